"""Geodesics predicted by a fitted network (:class:`vaemanifold.GeodesicNetwork`), refined on request."""

from __future__ import annotations

import copy
from typing import Mapping, Optional, Union

import torch
from stochman.curves import BasicCurve

from ..curves import interpolating_spline
from ..manifold import DecoderManifold
from .base import GeodesicSolver, SolverOutput
from .gauss_newton import lowest_start, sample_curve
from .least_squares import node_system, solve_block_tridiagonal, with_ridge
from .registry import make_solver

#: The Gauss-Newton options of ``refine=True``: it starts from the network's curve, so it skips the
#: coarsest level, and stops at twice the default tol. Chosen on 48 held-out mnist-2d pairs (docs:
#: "Amortised geodesics"): p90 L/best 1.0007 at 3.1 floors a pair, against 1.0007 at 3.4 with the
#: default tol and 1.0010 at 2.3 with 2e-3; starting at level 64 alone was slower and worse (1.0008, 4.2).
#: Each pair starts from the shortest of the network's curve, the line and the graph path on the first
#: level's nodes (the solver's ``graph_start`` candidates plus the network's curve; see
#: ``python docs/examples/refine_start.py``).
REFINE_OPTIONS = {"levels": (32, 64), "tol": 1e-3}
#: ``refine_options`` of a light refinement, for large distance matrices (``refine=True``): at most two
#: Gauss-Newton steps on 16 segments from the network's curve, no further levels. Measured on 256
#: random pairs of mnist-2d training codes, lengths on a 64-point grid over Gauss-Newton geodesics on the dense grid (docs:
#: "Amortised geodesics", ``python docs/examples/light_refine.py``): median 1.004 (p90 1.045) at 0.4
#: floors a pair, against 1.034 (1.156) raw at 0.1 and 0.999 (1.002) with ``refine=True`` at 5.
LIGHT_REFINE = {"levels": (16,), "iterations": 2, "tol": 1e-2, "extra_levels": 0, "graph_start": False}


class AmortizedSolver(GeodesicSolver):
    """The curves of a fitted geodesic network, as they are or refined.

    Options:
        network: a fitted :class:`vaemanifold.GeodesicNetwork` (required;
            ``GeodesicNetwork.fit`` or ``vaemanifold amortize`` make one). It
            is checked against the manifold (latent dimension, decoder
            fingerprint) before use. A network with several heads answers
            each pair with its shortest head on a coarse grid
            (``GeodesicNetwork.select_heads``), in the solver's time.
        refine: None (default): the network's curves as they are. True: the
            Gauss-Newton solver with levels (32, 64) and tol 1e-3
            (:data:`REFINE_OPTIONS`), each pair started from whichever of the
            network's curve, the straight line and the k-NN graph path is the
            shortest in data space on the first level's nodes
            (:func:`~vaemanifold.solvers.gauss_newton.lowest_start` by length:
            the cold solver's ``graph_start`` candidates plus the network's
            curve; length, not energy, so that an unevenly parametrised network
            curve is not passed over; ``refine_options={"graph_start": False}``:
            the network's curve alone). A method name in ``SOLVERS``: that
            solver started from the network's curves (``init=``), with
            ``refine_options``.
        refine_options: options of the refining solver: with ``refine=True`` they
            update :data:`REFINE_OPTIONS`; with a method name they are that
            solver's (default: none, its defaults). For large distance
            matrices, :data:`LIGHT_REFINE` (see there).
        tol: without refinement, a pair counts as converged when one full
            Gauss-Newton step on ``check_segments`` segments of its curve
            predicts it less than ``tol`` (relative) longer than the optimum of
            that model (default 0.01); otherwise its reason gives the predicted
            excess. The check costs one decoder Jacobian per node.
        check_segments: segments of that check (default 16). On 384 random
            pairs of mnist-2d codes, 8, 16, 32 and 64 segments flagged nearly
            the same pairs (of the 338 whose curve was over 1% longer than the
            Gauss-Newton geodesic, 335 to 337 flagged, with 33 to 39 false
            alarms; docs/examples/check_segments.py), and 16 costs half of 32.

    With refinement, convergence and reasons are the refining solver's.
    """

    name = "amortized"

    def __init__(
        self,
        network=None,
        refine: Union[None, bool, str] = None,
        refine_options: Optional[Mapping] = None,
        tol: float = 0.01,
        check_segments: int = 16,
    ) -> None:
        if network is None:
            raise ValueError(
                "the amortized solver needs network=, a fitted vaemanifold.GeodesicNetwork "
                "(GeodesicNetwork.fit(manifold, codes) or GeodesicNetwork.load(path); `vaemanifold amortize` saves one)"
            )
        if not (callable(getattr(network, "curve", None)) and callable(getattr(network, "check_manifold", None))):
            raise TypeError(f"network must be a vaemanifold.GeodesicNetwork, got {type(network).__name__}")
        if refine is not None and refine is not True and not isinstance(refine, str):
            raise ValueError(f"refine must be None, True or a method name, got {refine!r}")
        if isinstance(refine, str) and refine == self.name:
            raise ValueError("the amortized solver cannot refine with itself")
        if refine_options is not None and refine is None:
            raise ValueError("refine_options are options of the refining solver: give refine=True or a method name too")
        if not tol > 0 or int(check_segments) < 2:
            raise ValueError(f"tol must be positive and check_segments >= 2, got {tol} and {check_segments}")
        self.network = network
        self.refine = refine
        self.tol = float(tol)
        self.check_segments = int(check_segments)
        self.refine_options = dict(refine_options or {})
        self._refiner = None if refine is None else (
            make_solver("gauss_newton", **{**REFINE_OPTIONS, **self.refine_options})
            if refine is True
            else make_solver(refine, **self.refine_options)
        )
        self._choose_start = refine is True and self._refiner.graph_start

    def solve(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        if init is not None:
            raise ValueError("the amortized solver predicts its own curves; init= is not used (refine= starts from them)")
        self.network.check_manifold(manifold)
        network = self.network
        if network.center.dtype != z0.dtype or network.center.device != z0.device:
            network = copy.deepcopy(network).to(z0.device, z0.dtype)  # the caller's network stays as it is
        head = network.select_heads(manifold, z0, z1) if network.heads > 1 else None
        with torch.no_grad():
            curve = network.curve(z0, z1, head)
        if self._refiner is not None:
            if self._choose_start:
                curve = self._shortest_start(manifold, z0, z1, curve)
            return self._refiner.solve(manifold, z0, z1, init=curve)
        excess, finite = self._predicted_excess(manifold, curve)
        converged = excess < self.tol
        reasons = [
            None if ok
            else "the network's curve is not finite" if not is_finite
            else "the decoder returned non-finite values at the curve's check nodes" if x != x
            else f"one Gauss-Newton step predicts a curve {x:.1%} shorter: refine it (refine=True)"
            for ok, is_finite, x in zip(converged.tolist(), finite.tolist(), excess.tolist())
        ]
        return SolverOutput(curve, converged.cpu(), 0, reasons)

    def _shortest_start(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, curve: BasicCurve
    ) -> BasicCurve:
        """B curves: per pair, the network's curve, the line or the graph path, whichever is the shortest
        on the refining solver's first level's nodes (it samples the result at those very nodes)."""
        t = torch.linspace(0, 1, self._refiner.levels[0] + 1, dtype=z0.dtype, device=z0.device)
        with torch.no_grad(), manifold.frozen():
            return interpolating_spline(lowest_start(manifold, z0, z1, t, also=sample_curve(curve, t), by="length"))

    def _predicted_excess(self, manifold: DecoderManifold, curve: BasicCurve) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) sqrt(S / (S - b.delta)) - 1 for the full Gauss-Newton step delta at the check's nodes,
        and (B,) whether the curve's nodes are finite.

        The excess is 0 where S = 0 (equal ends), NaN where the nodes or the decoder's values are not finite.
        """
        z0 = curve.begin
        t = torch.linspace(0, 1, self.check_segments + 1, dtype=z0.dtype, device=z0.device)
        nodes = sample_curve(curve, t)
        finite = torch.isfinite(nodes).all(dim=(1, 2))
        excess = torch.full_like(z0[:, 0], float("nan"))
        if not finite.any():
            return excess, finite
        with torch.no_grad(), manifold.frozen():
            system = node_system(manifold, nodes[finite])
            delta = solve_block_tridiagonal(with_ridge(system), system.upper, system.rhs)
            decrease = (system.rhs * delta).sum(dim=(1, 2))
            remaining = (system.value - decrease).clamp_min(torch.finfo(z0.dtype).tiny)
            ratio = (system.value / remaining).sqrt() - 1
        ratio = torch.where(torch.isfinite(ratio), ratio, float("nan"))
        excess[finite] = torch.where(system.value <= torch.finfo(z0.dtype).tiny, 0.0, ratio)
        return excess, finite
