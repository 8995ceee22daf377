"""Checkpoints: one file per model, written atomically, read without pickle.

The file is ``torch.save`` of a plain dict::

    {"format": "vaemanifold.vae", "version": 1,
     "config": VAEConfig as a dict, "state_dict": {...}, "metadata": {...}}

read back with ``torch.load(weights_only=True)``, so loading a file runs no
code. A folder may be passed instead of a file: it is expected to hold
``model.pt``. :func:`save_run` writes such a run folder: ``model.pt``,
``history.json`` and ``history.png`` (the layout of the presets' cache and
of ``vaemanifold train --out``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Union

import torch

from ..device import default_device
from ..plotting import plot_history
from .model import CHECKPOINT_FORMAT as FORMAT
from .model import CHECKPOINT_VERSION as VERSION
from .model import MODEL_FILE, VAE, VAEConfig
from .training import TrainingHistory

PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A file that is not a readable vaemanifold checkpoint."""


def _model_file(path: PathLike) -> Path:
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def save(model: VAE, path: PathLike, metadata: Optional[dict] = None) -> Path:
    """Write ``model`` to ``path`` atomically (:meth:`VAE.save <vaemanifold.vae.model.VAE.save>`).

    ``path`` is a file, or a folder (an existing one, or a name without a
    suffix) that gets ``model.pt``.

    Args:
        metadata: JSON-like extras kept with the weights (data set, schedule, ...).

    Returns:
        the file written.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a vaemanifold VAE, got {type(model).__name__}")
    return model.save(path, dict(metadata or {}))


def load(path: PathLike, device: Optional[Union[str, torch.device]] = None) -> VAE:
    """Read a model written by :func:`save` (or ``VAE.save``).

    Args:
        path: the file, or a folder holding ``model.pt``.
        device: where to put the model; default: CUDA when present, else the CPU.

    Returns:
        the model in eval mode; the metadata is in ``model.metadata``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: (a ValueError) truncated, corrupted, or not a
            vaemanifold checkpoint, or written by a newer version.
    """
    file = _model_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint at {file}" + (f" (looked for {MODEL_FILE} in the folder {path})" if file != Path(path) else ""))
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before failing on them
            warnings.simplefilter("ignore")
            payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds: zip, pickle, EOF, runtime
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"{type(error).__name__}: {text.split('. ')[0]}"
        raise CheckpointError(f"{file} is not a readable checkpoint (truncated, corrupted or not a torch file): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{file} is a torch file but not a vaemanifold VAE checkpoint (format: {kind!r})")
    if not isinstance(payload.get("version"), int) or payload["version"] > VERSION:
        raise CheckpointError(
            f"{file} has checkpoint format version {payload.get('version')!r}; this vaemanifold reads up to {VERSION}"
        )
    try:
        config = VAEConfig(**payload["config"])
        model = VAE(config)
        state = payload["state_dict"]
        model.latents = torch.empty_like(state["latents"])
        model.labels = torch.empty_like(state["labels"])
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{file} is a damaged vaemanifold checkpoint: {error}") from None
    model.metadata = payload.get("metadata", {})
    return model.to(default_device(str(device) if device is not None else None)).eval()


def save_run(model: VAE, history: TrainingHistory, folder: PathLike) -> Path:
    """Write ``model.pt``, ``history.json`` and ``history.png`` into ``folder``; returns the model file."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    path = save(model, folder / MODEL_FILE, model.metadata)
    history.save(folder / "history.json")
    plt.close(plot_history(history, folder / "history.png")[0].figure)
    return path
