"""Neural-network curves: g(t) = (1-t) z0 + t z1 + t(1-t) psi(t), psi a smooth MLP."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..curves import NeuralCurve, _check_activation
from .energy import EnergySolver


class NeuralSolver(EnergySolver):
    """Minimise the energy of a :class:`~vaemanifold.NeuralCurve` per pair.

    Options: ``hidden`` widths of psi (default (8, 8) with the default
    Gauss-Newton optimiser, (32, 32) with Adam or L-BFGS), ``activation``
    ('tanh', 'softplus', 'sigmoid'), plus every option of
    :class:`~vaemanifold.solvers.energy.EnergySolver` (optimizer, iterations,
    tol, levels, coarse_tol, coarse_iterations, lr, points, sampling, energy,
    check_every, check_points, seed).

    The network's size is the Gauss-Newton speed knob: each step solves a
    P x P system per pair and needs P forward-mode tangents of the curve, P =
    106 for widths (8, 8) in d = 2 against 1,186 for (32, 32).

    Gauss-Newton defaults: ``tol`` 1e-4, 100 steps on the last level, levels
    (32, 64, 96), measured from the straight line on the benchmark's 16 pairs
    a preset with seeds 0 / 1 / 2 of the start
    (``docs/examples/neural_defaults.py``): p90 L/best 1.00034 / 1.00044 /
    1.00044 on ``mnist-2d`` and 1.00028 / 1.00028 / 1.00025 on ``mnist-8d``,
    at 22-31 floors a pair, against 1.0024 / 1.0015 / 1.0019 and 1.0006 /
    1.0009 / 1.0013 at 20-26 floors with the earlier tol 5e-4, 60 steps and
    levels (32, 64, 128), which stopped slow pairs 0.1-0.3% long. On
    ``fashion-2d`` (p90 1.0082 / 1.0083 / 1.0100) two pairs stay long: one
    takes the 10% longer route that every solver started from the line
    takes, and on the other the (8, 8) family's energy minimum is a longer
    curve: started from the Gauss-Newton geodesic (L/best 1.0011) the solver
    moves to 1.0113.

    Damping (``scaling``): Levenberg's, one scale for all weights, by default.
    Marquardt's (``scaling="diagonal"``, each weight by its own diagonal
    entry), measured the same way: on ``fashion-2d`` p90 1.0015 / 1.0445 /
    1.0110 (one pair's curve 53% long at seed 1), on ``mnist-2d`` 1.0070 /
    1.0005 / 1.0004 (one pair 13% long at seed 0); with the earlier defaults
    it was also worse at d = 32 (``mnist-conv-32d``, ``fashion-conv-32d``: p90
    1.00228 and 1.00148 against 1.00102 and 1.00085) and one sphere-chart
    pair ended 2e-4 from its great circle instead of within 1e-4. So it stays
    an option.
    """

    name = "neural"
    gauss_newton_iterations = 100
    gauss_newton_tol = 1e-4
    gauss_newton_levels = (32, 64, 96)

    def __init__(self, hidden: Optional[Sequence[int]] = None, activation: str = "tanh", **options) -> None:
        _check_activation(activation)
        super().__init__(**options)
        if hidden is None:
            hidden = (8, 8) if self.optimizer == "gauss-newton" else (32, 32)
        self.hidden = tuple(hidden)
        self.activation = activation

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> NeuralCurve:
        return NeuralCurve(z0, z1, hidden=self.hidden, activation=self.activation)
