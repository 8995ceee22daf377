"""Geodesic distance matrices: the pairs i < j cut into blocks, solved here or on Dask workers.

The N(N-1)/2 pairs of N points are numbered row by row and cut into blocks of
``block_size`` pairs (:class:`PairBlocks`). A block is the unit of work
(:func:`solve_block`) and, for :mod:`vaemanifold.distance_store`, of saving:
it is solved ``batch_size`` pairs at a time, so memory is bounded by the batch,
not by N. :func:`block_results` yields finished blocks, computed in this
process or, given a ``dask.distributed.Client``, as tasks on its workers: the
manifold, the solver and the points are scattered to every worker once, at
most :data:`TASKS_PER_WORKER` blocks per worker are queued at a time, and a
block whose worker is lost is run again elsewhere by Dask's scheduler.
Because a block is split into the same batches wherever it runs, the matrix
does not depend on where its blocks were solved.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np
import torch
from scipy.stats import spearmanr

from ._checks import check_choice
from .geodesic import FAILURE_POLICIES, MEASURE_GRID, connecting_geodesic, measure
from .manifold import DecoderManifold
from .progress import progress as progress_bar
from .solvers import DEFAULT_METHOD, GeodesicSolver, make_solver

# ``client`` arguments are dask.distributed Clients, typed Any: distributed is imported only when one is used.

#: Blocks queued per worker thread at a time on a Dask cluster (bounds the scheduler's memory for huge N).
TASKS_PER_WORKER = 4
#: Default block size, in batches.
BATCHES_PER_BLOCK = 16


@dataclass(frozen=True)
class PairBlocks:
    """The pairs i < j of ``points`` points, numbered row by row, in blocks of ``size`` pairs.

    Pair p is (i, j) with p = i N - i (i + 1) / 2 + (j - i - 1); block k holds the pairs
    k * size to (k + 1) * size - 1. Indices are computed per block, never for all pairs.
    """

    points: int
    size: int

    def __post_init__(self) -> None:
        if self.points < 0:
            raise ValueError(f"points must be >= 0, got {self.points}")
        if self.size < 1:
            raise ValueError(f"block size must be >= 1, got {self.size}")

    @property
    def pairs(self) -> int:
        return self.points * (self.points - 1) // 2

    def __len__(self) -> int:
        return math.ceil(self.pairs / self.size)

    def indices(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols), each (n,) int64 with rows < cols, of the pairs in ``block``."""
        if not 0 <= block < len(self):
            raise IndexError(f"block {block} out of range for {len(self)} blocks")
        p = np.arange(block * self.size, min((block + 1) * self.size, self.pairs), dtype=np.int64)
        n = self.points
        # the row of pair p is the largest i with offset(i) <= p, offset(i) = i n - i (i + 1) / 2
        i = np.floor((2 * n - 1 - np.sqrt((2 * n - 1) ** 2 - 8 * p.astype(np.float64))) / 2).astype(np.int64)
        offset = lambda r: r * n - r * (r + 1) // 2  # noqa: E731
        i = np.where(offset(i) > p, i - 1, i)  # floating-point round-off, one row either way
        i = np.where(offset(i + 1) <= p, i + 1, i)
        return i, p - offset(i) + i + 1


@dataclass
class BlockResult:
    """The solved pairs of one block.

    Attributes:
        block: the block's index.
        rows, cols: (n,) the pairs' indices.
        lengths: (n,) float64 lengths on the dense grid (NaN only where the decoder gave NaN).
        converged: (n,) bool.
        reasons: why a pair did not converge, by its position in the block.
        seconds: wall time of the block's solves.
    """

    block: int
    rows: np.ndarray
    cols: np.ndarray
    lengths: np.ndarray
    converged: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0

    def failures(self) -> list[dict]:
        """The pairs that did not converge: ``{"i", "j", "length", "reason"}`` each."""
        return [
            {"i": int(self.rows[k]), "j": int(self.cols[k]), "length": float(self.lengths[k]), "reason": reason}
            for k, reason in sorted(self.reasons.items())
        ]


def solve_block(
    manifold: DecoderManifold,
    Z: torch.Tensor,
    blocks: PairBlocks,
    block: int,
    solver: GeodesicSolver,
    batch_size: int,
    grid: int = MEASURE_GRID,
) -> BlockResult:
    """Solve the pairs of one block of ``blocks`` between the rows of Z (N, d), ``batch_size`` at a time,
    measuring each on ``grid`` points (not on the doubled grid: :func:`grid_cost` samples what the grid costs)."""
    start = time.perf_counter()
    rows, cols = blocks.indices(block)
    lengths, converged, reasons = [], [], {}
    for first in range(0, len(rows), batch_size):
        i = torch.as_tensor(rows[first : first + batch_size], device=Z.device)
        j = torch.as_tensor(cols[first : first + batch_size], device=Z.device)
        result = connecting_geodesic(manifold, Z[i], Z[j], method=solver, grid=grid, grid_change=False)
        lengths.append(result.length.detach().to("cpu", torch.float64).numpy())
        converged.append(result.converged.cpu().numpy())
        reasons.update({first + k: r for k, r in enumerate(result.reasons) if r is not None})
    empty = np.zeros(0)
    return BlockResult(
        block,
        rows,
        cols,
        np.concatenate(lengths) if lengths else empty,
        np.concatenate(converged) if converged else empty.astype(bool),
        reasons,
        time.perf_counter() - start,
    )


def _solve_block_on_worker(*args) -> BlockResult:
    """:func:`solve_block` with torch using the worker's thread count (Dask task)."""
    from distributed import get_worker

    torch.set_num_threads(max(1, get_worker().state.nthreads))
    return solve_block(*args)


def _distributed(
    client: Any,
    manifold: DecoderManifold,
    Z: torch.Tensor,
    blocks: PairBlocks,
    todo: list[int],
    solver: GeodesicSolver,
    batch_size: int,
    grid: int,
) -> Iterator[BlockResult]:
    from distributed import as_completed

    shared = client.scatter([manifold, Z, solver], broadcast=True, hash=False)
    manifold_f, Z_f, solver_f = shared
    threads = sum(client.nthreads().values()) or 1
    window = TASKS_PER_WORKER * threads
    queue = iter(todo)

    def submit(block: int):
        return client.submit(
            _solve_block_on_worker, manifold_f, Z_f, blocks, block, solver_f, batch_size, grid, pure=False
        )

    running = as_completed([submit(b) for _, b in zip(range(window), queue)])
    try:
        for future in running:
            result = future.result()
            future.release()
            nxt = next(queue, None)
            if nxt is not None:
                running.add(submit(nxt))
            yield result
    finally:
        running.clear()
        client.cancel(list(shared))


def block_results(
    manifold: DecoderManifold,
    Z: torch.Tensor,
    blocks: PairBlocks,
    todo: Iterable[int],
    solver: GeodesicSolver,
    batch_size: int,
    client: Optional[Any] = None,
    progress: bool = False,
    grid: int = MEASURE_GRID,
) -> Iterator[BlockResult]:
    """Solve the blocks ``todo`` of ``blocks``; yields each as it finishes (any order with a client).

    Args:
        manifold, Z: the latent space and its (N, d) points.
        blocks: how the pairs of Z are cut (``blocks.points == len(Z)``).
        todo: indices of the blocks to solve.
        solver: a solver instance (shipped to the workers as it is).
        batch_size: pairs per solver call.
        client: a ``dask.distributed.Client``; None solves here, one block after another.
        progress: a progress bar over blocks.
        grid: points of the grid each curve is measured on.
    """
    if blocks.points != len(Z):
        raise ValueError(f"the blocks are for {blocks.points} points, Z has {len(Z)}")
    todo = list(todo)
    if client is None:
        results = (solve_block(manifold, Z, blocks, b, solver, batch_size, grid) for b in todo)
    else:
        results = _distributed(client, manifold, Z, blocks, todo, solver, batch_size, grid)
    if progress:
        results = progress_bar(results, f"distances ({solver.name})", unit="block", total=len(todo))
    return iter(results)


def distance_matrix(
    manifold: DecoderManifold,
    Z: torch.Tensor,
    method: Union[str, GeodesicSolver] = DEFAULT_METHOD,
    batch_size: int = 64,
    on_failure: str = "raise",
    progress: bool = False,
    client: Optional[Any] = None,
    block_size: Optional[int] = None,
    grid: int = MEASURE_GRID,
    **options,
) -> torch.Tensor:
    """Symmetric (N, N) matrix of geodesic distances between the rows of Z (N, d).

    The N(N-1)/2 pairs are solved ``batch_size`` at a time, which bounds memory.
    With a ``dask.distributed.Client`` (``client=``), blocks of ``block_size``
    pairs (default ``16 * batch_size``) become tasks on its workers; the result
    equals the serial one, and a worker lost mid-run costs only its blocks, which
    Dask runs again. ``on_failure``, ``method`` and ``options`` are as for
    :func:`vaemanifold.distance`; with 'raise' the first unconverged pair stops
    the run.

    Each entry is the length of its curve on ``grid`` points (default
    MEASURE_GRID = 512). A coarser grid is cheaper for large matrices (with
    the amortized solver, measuring is most of the cost); see what it costs in
    accuracy with :func:`grid_cost` on a sample of the pairs first.
    """
    check_choice("on_failure", on_failure, FAILURE_POLICIES)
    manifold.check_points(Z, "Z")
    if Z.dim() != 2:
        raise ValueError(f"Z must be (N, d), got shape {tuple(Z.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    solver = make_solver(method, **options)
    blocks = PairBlocks(len(Z), block_size or BATCHES_PER_BLOCK * batch_size)
    D = np.zeros((len(Z), len(Z)))
    for result in block_results(manifold, Z, blocks, range(len(blocks)), solver, batch_size, client, progress, grid):
        lengths = result.lengths
        if on_failure == "raise" and result.reasons:
            (i, j, reason) = next((f["i"], f["j"], f["reason"]) for f in result.failures())
            raise RuntimeError(
                f"{len(result.reasons)} geodesics of block {result.block} did not converge (first: pair ({i}, {j}), "
                f"{reason}); pass on_failure='nan' or 'keep', or change the solver's options"
            )
        if on_failure == "nan":
            lengths = np.where(result.converged, lengths, np.nan)
        D[result.rows, result.cols] = lengths
        D[result.cols, result.rows] = lengths
    return torch.as_tensor(D).to(Z)


def sample_pairs(points: int, sample: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, j), each (sample,) int64: ``sample`` seeded random pairs of distinct indices below ``points`` (>= 2)."""
    if points < 2 or sample < 1:
        raise ValueError(f"sampling pairs needs >= 2 points and sample >= 1, got {points} points and {sample}")
    generator = torch.Generator().manual_seed(seed)
    i = torch.randint(points, (sample,), generator=generator)
    return i, (i + torch.randint(1, points, (sample,), generator=generator)) % points


def grid_cost(
    manifold: DecoderManifold,
    Z: torch.Tensor,
    grid: int,
    method: Union[str, GeodesicSolver] = DEFAULT_METHOD,
    sample: int = 64,
    seed: int = 0,
    **options,
) -> torch.Tensor:
    """What measuring on ``grid`` points costs: (sample,) relative length differences to the 512-point grid.

    ``sample`` random pairs of distinct rows of Z (N >= 2) are solved once and
    their curves measured on both grids: ``|L_grid / L_512 - 1|`` per pair.
    """
    i, j = sample_pairs(len(Z), sample, seed)
    result = connecting_geodesic(manifold, Z[i.to(Z.device)], Z[j.to(Z.device)], method=method, grid=grid, **options)
    fine = measure(manifold, result.curve, MEASURE_GRID)[0]
    return (result.length / fine - 1).abs()


def reference_check(
    manifold: DecoderManifold,
    Z: torch.Tensor,
    D: Union[np.ndarray, torch.Tensor],
    sample: int = 64,
    seed: int = 0,
    method: Union[str, GeodesicSolver] = DEFAULT_METHOD,
    **options,
) -> dict:
    """A distance matrix D (N, N) of the rows of Z against reference geodesics on ``sample`` sampled pairs.

    The reference solves the pairs with ``method`` (default: the default solver
    at its defaults), measured on the dense grid; pairs it does not converge on
    are left out. Returns ``{"pairs", "reference_converged", "method",
    "ratio": {"median", "p90", "min", "max"} of D_ij / L_ref, "ratios", "spearman"}``
    ("ratios" the per-pair D_ij / L_ref of the converged pairs; "spearman" Spearman's
    rank correlation of D_ij and L_ref, None with fewer than 3 pairs).
    """
    D = torch.as_tensor(D)
    if D.shape != (len(Z), len(Z)):
        raise ValueError(f"D must be ({len(Z)}, {len(Z)}) for {len(Z)} points, got {tuple(D.shape)}")
    i, j = sample_pairs(len(Z), sample, seed)
    solver = make_solver(method, **options)
    result = connecting_geodesic(manifold, Z[i.to(Z.device)], Z[j.to(Z.device)], method=solver)
    ok = result.converged.cpu().numpy()
    entries = D[i, j].to(torch.float64).numpy()[ok]
    reference = result.length.detach().to("cpu", torch.float64).numpy()[ok]
    ratio = entries / reference
    return {
        "pairs": sample,
        "reference_converged": int(ok.sum()),
        "method": solver.name,
        "ratio": {
            "median": float(np.median(ratio)), "p90": float(np.quantile(ratio, 0.9)),
            "min": float(ratio.min()), "max": float(ratio.max()),
        } if len(ratio) else {},
        "ratios": ratio.tolist(),
        "spearman": float(spearmanr(entries, reference).statistic) if len(ratio) > 2 else None,
    }
