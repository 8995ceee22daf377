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

    Damping (``scaling``): Levenberg's, one scale for all weights, by default.
    Marquardt's (``scaling="diagonal"``, each weight by its own diagonal entry)
    was measured from the straight line on the benchmark pairs: on
    ``fashion-2d``, seeds 0-3, p90 L/best 1.0018 / 1.0059 / 1.0063 / 1.0270
    against 1.0320 / 1.0149 / 1.0089 / 1.0284 (seed 0 partly by luck: one pair
    found its shorter route only there); on ``mnist-2d`` and ``mnist-8d`` no
    measurable difference; at d = 32 (``mnist-conv-32d``, ``fashion-conv-32d``)
    worse, p90 1.00228 and 1.00148 against 1.00102 and 1.00085, at 1.1-1.4x the
    floors; and one sphere-chart pair ended 2e-4 from its great circle instead
    of within 1e-4. So it stays an option.
    """

    name = "neural"
    gauss_newton_iterations = 60

    def __init__(self, hidden: Optional[Sequence[int]] = None, activation: str = "tanh", **options) -> None:
        _check_activation(activation)
        super().__init__(**options)
        if hidden is None:
            hidden = (8, 8) if self.optimizer == "gauss-newton" else (32, 32)
        self.hidden = tuple(hidden)
        self.activation = activation

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> NeuralCurve:
        return NeuralCurve(z0, z1, hidden=self.hidden, activation=self.activation)
