"""Cubic splines (stochman's family, C2-mended) minimising the curve energy."""

from __future__ import annotations

import torch

from ..curves import SplineCurve
from .energy import EnergySolver


class SplineSolver(EnergySolver):
    """Minimise the energy of a :class:`~vaemanifold.curves.SplineCurve` per pair.

    Unlike stochman's ``connecting_geodesic`` (Adam, lr 0.1, 150 steps, a
    20-point grid, all hard-coded) every setting is an option: ``num_nodes``
    (knots including the ends, default 20) plus every option of
    :class:`~vaemanifold.solvers.energy.EnergySolver`. The curve is linear in
    its parameters, so its Gauss-Newton steps (the default) need no curve
    Jacobian beyond the fixed spline basis. With ``optimizer='lbfgs'`` the
    sampling defaults to a fixed grid (a 12-knot cubic cannot exploit it) and
    each pair gets its own L-BFGS, so no line search spans pairs.

    Damping: Levenberg's on the coarse levels (``coarse_scaling='identity'``,
    which picks the route), ``scaling='points'`` on the last (the step damped
    by how far it moves the sample points, whatever the coefficient basis).
    With Levenberg's there too (the earlier default), a pair whose geodesic
    bends sharply crept along its valley in stochman's coefficient basis and
    stopped 1.5% long (1.0% after 200 steps); with 'points' on every level one
    pair took a route 8% longer (``docs/examples/spline_scaling.py``).
    """

    name = "spline"
    gauss_newton_damping = 1e-3
    gauss_newton_scaling = "points"
    gauss_newton_coarse_scaling = "identity"

    def __init__(self, num_nodes: int = 20, sampling: str = "grid", **options) -> None:
        if num_nodes < 3:
            raise ValueError(f"num_nodes must be >= 3, got {num_nodes}")
        super().__init__(sampling=sampling, **options)
        self.num_nodes = int(num_nodes)

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> SplineCurve:
        return SplineCurve(z0, z1, num_nodes=self.num_nodes)
