"""A resumable distance matrix on disk: finished blocks survive any interruption.

A run's folder holds

* ``settings.json`` -- what the run computes (source, method, options, block size, ...);
  a folder is only resumed with the same settings;
* ``codes.npy`` -- the (N, d) points, so a resumed run connects the very same points;
* ``distances.npy`` -- the (N, N) float64 matrix, memory-mapped, filled block by block;
* ``blocks.npy`` -- one done flag per block (:class:`vaemanifold.distances.PairBlocks`);
* ``failures.jsonl`` -- one line per finished block with its unconverged pairs;
* ``run.json`` -- written at the end: the settings, counts, timing and every failure.

A block is saved in that order: its entries, flushed; its failures line, flushed;
then its done flag, flushed. A run killed at any point has either saved a block
whole or not marked it done, so a resumed run recomputes at most the blocks
that were in flight.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

import numpy as np

from ._checks import check_output_folder
from ._files import atomic_write
from .distances import BlockResult, PairBlocks

PathLike = Union[str, os.PathLike]


def _write_json(path: Path, document: dict) -> None:
    atomic_write(path, lambda stream: stream.write((json.dumps(document, indent=2) + "\n").encode()))


class DistanceStore:
    """The files of one distance-matrix run (see the module's docstring).

    Use :meth:`open`; then :meth:`pending` lists the blocks still to solve,
    :meth:`save` stores a finished one, :meth:`finish` writes ``run.json``.
    """

    def __init__(self, folder: Path, settings: dict, blocks: PairBlocks) -> None:
        self.folder = folder
        self.settings = settings
        self.blocks = blocks
        self.distances = np.load(folder / "distances.npy", mmap_mode="r+")
        self.done = np.load(folder / "blocks.npy", mmap_mode="r+")

    @classmethod
    def open(cls, folder: PathLike, settings: dict, codes: np.ndarray, block_size: int) -> "DistanceStore":
        """Create the run in ``folder``, or reopen it when it holds a run with the same settings and codes.

        Args:
            folder: the output folder (created; its parents too).
            settings: JSON-safe description of the run; ``block_size`` and the
                codes' shape are added.
            codes: (N, d) points.
            block_size: pairs per block.

        Raises:
            ValueError: ``folder`` is not a folder, or holds a run with other settings or codes.
        """
        folder = check_output_folder(folder)
        codes = np.asarray(codes, dtype=np.float64)
        settings = {**settings, "block_size": int(block_size), "points": len(codes), "latent_dim": int(codes.shape[1])}
        blocks = PairBlocks(len(codes), block_size)
        stored = folder / "settings.json"
        if stored.exists():
            previous = json.loads(stored.read_text())
            differ = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            if differ:
                changes = "; ".join(f"{k}: {previous.get(k)!r} there, {settings.get(k)!r} now" for k in differ)
                raise ValueError(
                    f"{folder} holds a run with other settings ({changes}); use another --out, or delete the folder"
                )
            if not np.array_equal(np.load(folder / "codes.npy"), codes):
                raise ValueError(f"{folder} holds a run over other codes; use another --out, or delete the folder")
            return cls(folder, settings, blocks)
        np.save(folder / "codes.npy", codes)
        np.lib.format.open_memmap(folder / "distances.npy", mode="w+", dtype=np.float64, shape=(len(codes),) * 2).flush()
        np.save(folder / "blocks.npy", np.zeros(len(blocks), dtype=np.uint8))
        (folder / "failures.jsonl").touch()
        _write_json(stored, settings)  # last: a folder with settings.json is complete
        return cls(folder, settings, blocks)

    def pending(self) -> list[int]:
        """Indices of the blocks not saved yet."""
        return np.flatnonzero(self.done == 0).tolist()

    def save(self, result: BlockResult) -> None:
        """Store one finished block: entries, failures, then its done flag (each flushed)."""
        self.distances[result.rows, result.cols] = result.lengths
        self.distances[result.cols, result.rows] = result.lengths
        self.distances.flush()
        with open(self.folder / "failures.jsonl", "a") as log:
            log.write(json.dumps({"block": result.block, "failures": result.failures()}) + "\n")
            log.flush()
            os.fsync(log.fileno())
        self.done[result.block] = 1
        self.done.flush()

    def failures(self) -> list[dict]:
        """The unconverged pairs of the saved blocks (a block saved twice counts once)."""
        by_block = {}
        for line in (self.folder / "failures.jsonl").read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill; its block is not marked done
                continue
            by_block[entry["block"]] = entry["failures"]
        return [f for block, failures in sorted(by_block.items()) if self.done[block] for f in failures]

    def finish(self, summary: dict) -> dict:
        """Write ``run.json`` (settings, ``summary``, failures) once every block is saved; returns it."""
        pending = self.pending()
        if pending:
            raise RuntimeError(f"{len(pending)} of {len(self.blocks)} blocks are not saved yet")
        failures = self.failures()
        document = {"settings": self.settings, **summary, "failures": len(failures), "failed_pairs": failures}
        _write_json(self.folder / "run.json", document)
        return document
