"""What every geodesic solver provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from stochman.curves import BasicCurve

from ..manifold import DecoderManifold


@dataclass
class SolverOutput:
    """What a solver hands back to :func:`vaemanifold.connecting_geodesic`.

    Attributes:
        curve: B curves from z0 to z1.
        converged: (B,) bool, per pair.
        iterations: iterations (optimiser steps, Newton/mesh iterations, ...) run.
        reasons: per pair, None where converged, else why not.
    """

    curve: BasicCurve
    converged: torch.Tensor
    iterations: int
    reasons: list[Optional[str]] = field(default_factory=list)


class GeodesicSolver(ABC):
    """A method for connecting geodesics, batched over B endpoint pairs.

    Subclasses set ``name``, take their options as keyword arguments of
    ``__init__`` (documented there), and implement :meth:`solve`. Register a
    new one with :func:`vaemanifold.solvers.register`.
    """

    name: ClassVar[str]

    @abstractmethod
    def solve(
        self,
        manifold: DecoderManifold,
        z0: torch.Tensor,
        z1: torch.Tensor,
        init: Optional[BasicCurve] = None,
    ) -> SolverOutput:
        """Connect z0[b] to z1[b] for each b.

        Args:
            manifold: the latent space.
            z0, z1: (B, d) validated endpoints.
            init: optional initial curves (B of them) for solvers that refine one.
        """

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({options})"
