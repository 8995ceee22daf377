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

    The Gauss-Newton damping is Marquardt's (``scaling="diagonal"``): a network's
    weights and biases in different layers move the curve by very different
    amounts, and damping them alike held back the ones the curve is least
    sensitive to. Measured from the straight line on the 16 benchmark pairs of
    ``fashion-2d`` with seeds 0-3, the p90 of L/best was 1.0018 / 1.0059 /
    1.0063 / 1.0270 against 1.0320 / 1.0149 / 1.0089 / 1.0284 with
    ``"identity"``; the slowest pair ended 1.4-5.1% long instead of 1.6-6.3%. On
    ``mnist-2d`` and ``mnist-8d`` (seed 0) it made no measurable difference
    (p90 1.00085 and 1.00084 against 1.00078 and 1.00089). At d = 32 it is
    worse: on the ``mnist-conv-32d`` and ``fashion-conv-32d`` presets the p90
    was 1.00228 and 1.00148 against 1.00102 and 1.00085 with ``"identity"``,
    at 1.1-1.4x the floors; pass ``scaling="identity"`` there.
    """

    name = "neural"
    gauss_newton_iterations = 60
    gauss_newton_scaling = "diagonal"

    def __init__(self, hidden: Optional[Sequence[int]] = None, activation: str = "tanh", **options) -> None:
        _check_activation(activation)
        super().__init__(**options)
        if hidden is None:
            hidden = (8, 8) if self.optimizer == "gauss-newton" else (32, 32)
        self.hidden = tuple(hidden)
        self.activation = activation

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> NeuralCurve:
        return NeuralCurve(z0, z1, hidden=self.hidden, activation=self.activation)
