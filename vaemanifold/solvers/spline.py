"""Cubic splines (stochman's family, C2-mended) minimising the curve energy."""

from __future__ import annotations

import torch

from ..curves import SplineCurve
from .energy import EnergySolver


class SplineSolver(EnergySolver):
    """Minimise the energy of a :class:`~vaemanifold.curves.SplineCurve` per pair.

    Unlike stochman's ``connecting_geodesic`` (Adam, lr 0.1, 150 steps, a
    20-point grid, all hard-coded) every setting is an option: ``num_nodes``
    (knots including the ends, default 12) plus every option of
    :class:`~vaemanifold.solvers.energy.EnergySolver`. Defaults differ from
    the neural solver's: L-BFGS on a fixed grid, since a 12-knot cubic is a
    small, smooth, well-conditioned family that cannot exploit the grid and
    L-BFGS reaches its minimum in a few steps where Adam crawls (measured on
    the sphere chart: 5e-5 vs 2e-3 relative error on a near-polar pair).
    L-BFGS treats the batch as one problem (one line search for all pairs), so
    a pair's result can move, within ``tol``, with its batch-mates.
    """

    name = "spline"

    def __init__(self, num_nodes: int = 12, optimizer: str = "lbfgs", sampling: str = "grid", **options) -> None:
        if num_nodes < 3:
            raise ValueError(f"num_nodes must be >= 3, got {num_nodes}")
        super().__init__(optimizer=optimizer, sampling=sampling, **options)
        self.num_nodes = int(num_nodes)

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> SplineCurve:
        return SplineCurve(z0, z1, num_nodes=self.num_nodes)
