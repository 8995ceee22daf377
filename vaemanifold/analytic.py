"""Decoders whose geodesics are known, for tests, examples and benchmarks.

* :func:`linear_manifold` -- f(z) = A z: geodesics are straight lines, d(a, b) = ||A (b - a)||.
* :func:`sphere_manifold` -- spherical coordinates (theta, phi) -> unit sphere in R^3:
  d(a, b) is the great-circle distance (:func:`great_circle_distance`).
* :func:`random_mlp_manifold` -- a random tanh MLP decoder with a softplus std:
  no closed form, but curved everywhere, like a trained decoder.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .manifold import DecoderManifold


def sphere_chart(z: torch.Tensor) -> torch.Tensor:
    """Spherical coordinates (..., 2) = (polar theta, azimuth phi) -> (..., 3) on the unit sphere."""
    theta, phi = z[..., 0], z[..., 1]
    return torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()], dim=-1)


def great_circle_distance(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Great-circle distance between chart points (..., 2) -> (...)."""
    cos = (sphere_chart(z0) * sphere_chart(z1)).sum(dim=-1).clamp(-1.0, 1.0)
    return torch.arccos(cos)


def sphere_grid(n_theta: int = 40, n_phi: int = 60, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(n_theta * n_phi, 2) chart points, theta in [0.3, pi - 0.3], phi in [-pi, pi] (for the graph solver)."""
    theta = torch.linspace(0.3, math.pi - 0.3, n_theta, dtype=dtype)
    phi = torch.linspace(-math.pi, math.pi, n_phi, dtype=dtype)
    return torch.cartesian_prod(theta, phi)


def sphere_manifold(latents: Optional[torch.Tensor] = None) -> DecoderManifold:
    """The unit sphere through its spherical-coordinate chart (keep points away from the poles).

    Args:
        latents: optional (N, 2) chart points to attach (e.g. :func:`sphere_grid`).
    """
    return DecoderManifold(sphere_chart, latents=latents, latent_dim=2)


def sphere_pairs(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """n random chart pairs with theta in [0.6, 2.5] (away from the poles) and ``abs(delta phi) < 2``.

    Returns (z0, z1), each (n, 2).
    """
    g = torch.Generator().manual_seed(seed)

    def draw(phi0: torch.Tensor) -> torch.Tensor:
        theta = 0.6 + 1.9 * torch.rand(n, generator=g, dtype=dtype)
        return torch.stack([theta, phi0], dim=-1)

    phi = 4 * torch.rand(n, generator=g, dtype=dtype) - 2
    z0 = draw(phi)
    z1 = draw(phi + 4 * torch.rand(n, generator=g, dtype=dtype) - 2)
    return z0, z1


def linear_manifold(A: torch.Tensor) -> DecoderManifold:
    """f(z) = A z for a (D, d) matrix A; the metric is A^T A everywhere."""
    A = A.detach().clone()
    return DecoderManifold(lambda z: z @ A.T.to(z), latent_dim=A.shape[1])


class RandomDecoder(nn.Module):
    """A random tanh MLP mean and softplus std, (..., d) -> (..., D) each."""

    def __init__(self, latent_dim: int, data_dim: int = 16, hidden: int = 32, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.mean = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, data_dim))
        self.std = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, data_dim), nn.Softplus())
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.5))


def random_mlp_manifold(
    latent_dim: int, data_dim: int = 16, hidden: int = 32, seed: int = 0, dtype: Optional[torch.dtype] = None
) -> DecoderManifold:
    """DecoderManifold of a :class:`RandomDecoder` (optionally cast to ``dtype``)."""
    decoder = RandomDecoder(latent_dim, data_dim, hidden, seed)
    if dtype is not None:
        decoder = decoder.to(dtype)
    return DecoderManifold(decoder.mean, decoder.std, latent_dim=latent_dim)
