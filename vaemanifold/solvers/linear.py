"""The straight line in latent space: the baseline every geodesic is compared with."""

from __future__ import annotations

from typing import Optional

import torch
from stochman.curves import BasicCurve

from ..curves import SplineCurve
from ..manifold import DecoderManifold
from .base import GeodesicSolver, SolverOutput


class LinearSolver(GeodesicSolver):
    """g(t) = (1 - t) z0 + t z1. Takes no options; always 'converged' (nothing is solved)."""

    name = "linear"

    def solve(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        line = SplineCurve(z0, z1, num_nodes=3, requires_grad=False)
        return SolverOutput(line, torch.ones(len(z0), dtype=torch.bool), 0, [None] * len(z0))
