"""Input validation shared by the public functions: clear errors, early."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch


def check_points(points: torch.Tensor, latent_dim: int, name: str = "points") -> torch.Tensor:
    """Check that ``points`` is a finite float tensor of shape (..., latent_dim)."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.dim() == 0:
        raise ValueError(f"{name} must have shape (..., {latent_dim}), got a scalar")
    if points.shape[-1] != latent_dim:
        raise ValueError(
            f"{name} has latent dimension {points.shape[-1]} (shape {tuple(points.shape)}), "
            f"but the manifold's latent dimension is {latent_dim}"
        )
    if not points.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {points.dtype}")
    if not torch.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return points


def check_endpoints(z0: torch.Tensor, z1: torch.Tensor, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch of endpoint pairs and return them as (B, d) tensors.

    ``z0`` and ``z1`` are (d,) or (B, d); a single point is broadcast against a batch.
    """
    z0 = check_points(z0, latent_dim, "z0")
    z1 = check_points(z1, latent_dim, "z1")
    if z0.dim() > 2 or z1.dim() > 2:
        raise ValueError(f"endpoints must be (d,) or (B, d); got z0 {tuple(z0.shape)} and z1 {tuple(z1.shape)}")
    z0, z1 = z0.reshape(-1, latent_dim), z1.reshape(-1, latent_dim)
    if z0.shape[0] != z1.shape[0]:
        if z0.shape[0] == 1:
            z0 = z0.expand_as(z1)
        elif z1.shape[0] == 1:
            z1 = z1.expand_as(z0)
        else:
            raise ValueError(f"z0 and z1 hold different numbers of points: {z0.shape[0]} and {z1.shape[0]}")
    return z0, z1


def check_choice(name: str, value: object, choices: tuple | list | dict) -> None:
    """Raise a ValueError naming the valid choices when ``value`` is not one of them."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid: {valid}")


def check_output_folder(path: Union[str, os.PathLike]) -> Path:
    """Create the output folder ``path`` (and its parents) before any work; returns it as a Path.

    Raises:
        ValueError: ``path`` or one of its parents is a file, or the folder cannot be created.
    """
    folder = Path(path)
    for place in (folder, *folder.parents):
        if place.exists() and not place.is_dir():
            where = "is a file" if place == folder else f"lies under {place}, which is a file"
            raise ValueError(f"output folder {folder} {where}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create output folder {folder}: {error.strerror}") from None
    return folder
