"""Neural-network curves: g(t) = (1-t) z0 + t z1 + t(1-t) psi(t), psi a smooth MLP."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..curves import NeuralCurve, _check_activation, _check_features
from .energy import EnergySolver


class NeuralSolver(EnergySolver):
    """Minimise the energy of a :class:`~vaemanifold.NeuralCurve` per pair.

    Options: ``hidden`` widths of psi (default (8, 8) with the default
    Gauss-Newton optimiser, (32, 32) with Adam or L-BFGS), ``features`` (F,
    Fourier frequencies sin(k pi t), cos(k pi t) fed to psi beside 2t - 1:
    default 8 with Gauss-Newton, 0 with Adam or L-BFGS), ``activation``
    ('tanh', 'softplus', 'sigmoid'), plus every option of
    :class:`~vaemanifold.solvers.energy.EnergySolver` (optimizer, iterations,
    tol, levels, coarse_tol, coarse_iterations, lr, points, sampling, energy,
    check_every, check_points, seed).

    The network's size is the Gauss-Newton speed knob: each step solves a
    P x P system per pair and needs P forward-mode tangents of the curve, P =
    234 for widths (8, 8) and 8 frequencies in d = 2 (106 without them),
    against 1,186 for (32, 32) without them.

    Gauss-Newton defaults: 8 frequencies, ``tol`` 1e-4, 100 steps on each
    earlier level and 70 on the last, levels (32, 64, 96), measured from the
    straight line on the benchmark's 16 pairs a preset with seeds 0 / 1 / 2 of
    the start (``docs/examples/neural_defaults.py``): p90 L/best 1.00005 /
    1.00002 / 1.00002 on ``mnist-2d``, 1.00009 / 1.00008 / 1.00007 on
    ``mnist-8d`` and 1.00082 / 1.00119 / 1.00068 on ``fashion-2d``, at 13-38
    floors a pair. Without the Fourier inputs the same steps gave 1.0006-1.0008,
    1.0002-1.0003 and 1.0069-1.0076, and the earlier defaults (no features, 10
    steps a coarse level, 100 on the last) 1.0003-1.0004, 1.0003 and
    1.0081-1.0099: on one ``fashion-2d`` pair, whose geodesic is 4.4 times
    shorter than its line and whose latent speed varies eightfold, a tanh MLP
    of t alone could not follow the geodesic (started from it, L/best 1.0011,
    it moved to 1.0113); with 8 frequencies it reaches 1.0011-1.0022 from the
    line.

    Damping (``scaling``): Levenberg's, one scale for all weights, by default.
    Marquardt's (``scaling="diagonal"``, each weight by its own diagonal
    entry), measured the same way with features, is as good on the MNIST
    models and better on ``fashion-2d`` (p90 1.00053 / 1.00039 / 1.00037, at
    32-46 floors). At d = 32 with features it is no better
    (``docs/examples/neural_scaling_d32.py``: ``mnist-conv-32d``,
    ``fashion-conv-32d`` p90 1.00019 and 1.00025 against 1.00018 and
    1.00019). Without features it sent single pairs 13% (``mnist-2d``) and
    53% (``fashion-2d``) astray and was worse at d = 32. So it stays an
    option.
    """

    name = "neural"
    gauss_newton_iterations = 70
    gauss_newton_coarse_iterations = 100
    gauss_newton_tol = 1e-4
    gauss_newton_levels = (32, 64, 96)

    def __init__(
        self,
        hidden: Optional[Sequence[int]] = None,
        activation: str = "tanh",
        features: Optional[int] = None,
        **options,
    ) -> None:
        _check_activation(activation)
        super().__init__(**options)
        gauss_newton = self.optimizer == "gauss-newton"
        if hidden is None:
            hidden = (8, 8) if gauss_newton else (32, 32)
        if features is None:
            features = 8 if gauss_newton else 0
        self.hidden = tuple(hidden)
        self.activation = activation
        self.features = _check_features(features)

    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> NeuralCurve:
        return NeuralCurve(z0, z1, hidden=self.hidden, activation=self.activation, features=self.features)
