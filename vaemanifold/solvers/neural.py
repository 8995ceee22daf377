"""Neural-network curves: g(t) = (1-t) z0 + t z1 + t(1-t) psi(t), psi a smooth MLP."""

from __future__ import annotations

from typing import Sequence

import torch

from ..curves import NeuralCurve, _check_activation
from .energy import EnergySolver


class NeuralSolver(EnergySolver):
    """Minimise the energy of a :class:`~vaemanifold.NeuralCurve` per pair.

    Options: ``hidden`` widths of psi (default (32, 32)), ``activation``
    ('tanh', 'softplus', 'sigmoid'), plus every option of
    :class:`~vaemanifold.solvers.energy.EnergySolver` (iterations, optimizer,
    lr, points, sampling, energy, tol, check_every, check_points, seed).
    """

    name = "neural"

    def __init__(self, hidden: Sequence[int] = (32, 32), activation: str = "tanh", **options) -> None:
        _check_activation(activation)
        super().__init__(**options)
        self.hidden = tuple(hidden)
        self.activation = activation

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> NeuralCurve:
        return NeuralCurve(z0, z1, hidden=self.hidden, activation=self.activation)
