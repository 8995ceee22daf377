"""Geodesics by Gauss-Newton on a discretised curve, coarse to fine (the default solver).

The curve is its nodes at n + 1 equally spaced times; the energy of the
polyline through their images f(x_i) is a nonlinear least-squares problem
whose Gauss-Newton matrix is block tridiagonal
(:mod:`vaemanifold.solvers.least_squares`). Each level solves it for all
pairs at once, with a per-pair step length, acceptance and convergence; the next
level starts from the C2 cubic spline through the previous level's nodes,
sampled at twice as many times. The answer is that spline through the finest
level's nodes (a :class:`~vaemanifold.curves.HermiteCurve`), which
:func:`vaemanifold.connecting_geodesic` measures on its dense grid like every
other curve: lengths at the nodes alone under-report (by up to 11% at 16
segments on a trained MNIST decoder), so coarse levels only warm-start.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from stochman.curves import BasicCurve

from .._checks import check_choice
from ..curves import interpolating_spline, line_points
from ..manifold import DecoderManifold
from .base import GeodesicSolver, SolverOutput
from .graph import GraphSolver
from .least_squares import NodeSystem, gauss_newton_descent, node_model, node_value, solve_block_tridiagonal, with_ridge


#: A converged pair is flagged when adding the midpoints of its last level's segments lengthens the
#: data-space polyline by more than this: the nodes then skip part of the curve (the optimum is
#: the discretisation's, not the geodesic's). Resolved curves change by well under 1% at 64 segments.
RESOLUTION_TOL = 0.05
#: A pair whose last level's stretch (the same test) exceeds this gets another level at twice the
#: segments, alone (``extra_levels``). On the presets' benchmark pairs a stretch of 2.5% at 64 segments
#: left the curve 0.9% longer than at 128; stretches below 0.5% left it within 0.05%.
REFINE_STRETCH = 0.01
#: ``graph_start`` considers the k-NN graph of the manifold's latent codes only up to this many codes
#: (building it measures about 3 segments of 5 points a code, once per manifold).
GRAPH_START_POINTS = 10_000


def sample_curve(curve: BasicCurve, t: torch.Tensor) -> torch.Tensor:
    """A batch of B curves at times t (N,) as (B, N, d), also for B = 1."""
    with torch.no_grad():
        return curve(t).reshape(len(curve), len(t), -1)


class GaussNewtonSolver(GeodesicSolver):
    """Gauss-Newton on the nodes of a discretised curve, damped by a per-pair step length, coarse to fine.

    Options:
        levels: segments per level, increasing (default (16, 32, 64)). The
            answer is the C2 cubic spline through the last level's nodes.
        tol: relative energy change that counts as converged on the last level (default 5e-4).
        iterations: maximum steps on the last level (default 50).
        coarse_tol: the same on the earlier levels (default 1e-2; they only warm-start).
        coarse_iterations: maximum steps on each earlier level (default 10).

    Each level runs :func:`~vaemanifold.solvers.least_squares.gauss_newton_descent`:
    a pair converges when, on the last level, a full Gauss-Newton step changes
    its energy by less than ``tol`` and its model predicts no larger decrease;
    it then stops while the others go on. Each step costs one decoder
    Jacobian per interior node (d forward-mode JVPs) and one decoder pass per
    node for the acceptance test. Works in the endpoints' dtype (float32 or
    float64); ``init=`` curves are sampled on the first level's times.

    extra_levels: at most this many further levels, each at twice the
        segments of the one before, for the pairs whose curve the last level's
        nodes do not resolve (adding the segments' midpoints lengthens the
        data-space polyline by more than :data:`REFINE_STRETCH`); each such
        level runs on those pairs alone, with ``tol`` and ``iterations``
        (default 2). The others' curves are the same cubic either way.

    graph_start: without ``init=``, on a manifold with latent codes (11 to
        :data:`GRAPH_START_POINTS` of them), each pair starts from whichever of
        the straight line and the shortest path between its ends on the
        10-NN graph of those codes (the ``graph`` solver, unrefined) has the
        lower discrete energy on the first level's nodes (default True; False:
        always the straight line). The graph is built on first use and cached
        per manifold; each pair's path is one Dijkstra run and 2 k short
        segments measured. On the presets' benchmark pairs, 10-13 of 16 mnist-2d and
        fashion-2d pairs started from the path, which halved the solver's cost
        there and converged pairs that crawled from the line; on mnist-8d no
        pair did (an 8-D graph of 4,000 codes is coarse).

    A pair whose nodes still do not resolve its curve (the same test above
    :data:`RESOLUTION_TOL`, e.g. where a periodic or folding decoder lets two
    adjacent nodes map close together across a long stretch of curve) is marked
    not converged, with that reason: the solver minimised the energy of its
    nodes, not of the curve between them.

    The defaults were chosen on 16 held-out pairs of each preset (mnist-2d,
    mnist-8d, fashion-2d) against a 512-segment reference: a 128-segment last
    level for every pair gained nothing measurable in the median and costs d
    Jacobian passes over twice the nodes; one fashion-2d pair, whose 64-segment
    curve was 0.9% too long, needed it, and ``extra_levels`` gives it to such
    pairs alone.
    """

    name = "gauss_newton"

    def __init__(
        self,
        levels: Sequence[int] = (16, 32, 64),
        tol: float = 5e-4,
        iterations: int = 50,
        coarse_tol: float = 1e-2,
        coarse_iterations: int = 10,
        extra_levels: int = 2,
        graph_start: bool = True,
    ) -> None:
        levels = tuple(int(n) for n in levels)
        if not levels or min(levels) < 2 or list(levels) != sorted(set(levels)):
            raise ValueError(f"levels must be increasing segment counts >= 2, got {levels}")
        if not (tol > 0 and coarse_tol > 0):
            raise ValueError(f"tol and coarse_tol must be positive, got {tol} and {coarse_tol}")
        if iterations < 1 or coarse_iterations < 1:
            raise ValueError(f"iterations and coarse_iterations must be >= 1, got {iterations}, {coarse_iterations}")
        if int(extra_levels) < 0:
            raise ValueError(f"extra_levels must be >= 0, got {extra_levels}")
        self.extra_levels = int(extra_levels)
        self.graph_start = bool(graph_start)
        self.levels = levels
        self.tol = float(tol)
        self.iterations = int(iterations)
        self.coarse_tol = float(coarse_tol)
        self.coarse_iterations = int(coarse_iterations)

    def solve(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        B, d = z0.shape
        t = torch.linspace(0, 1, self.levels[0] + 1, dtype=z0.dtype, device=z0.device)
        iterations = 0
        with torch.no_grad(), manifold.frozen():
            if init is not None:
                nodes = sample_curve(init, t).to(z0)
            elif self.graph_start:
                nodes = lowest_start(manifold, z0, z1, t)
            else:
                nodes = line_points(z0, z1, t)
            for level, segments in enumerate(self.levels):
                if level:
                    t = torch.linspace(0, 1, segments + 1, dtype=z0.dtype, device=z0.device)
                    nodes = sample_curve(interpolating_spline(nodes), t)
                last = level == len(self.levels) - 1
                result = gauss_newton_descent(
                    manifold,
                    nodes[:, 1:-1].reshape(B, -1),
                    _node_points(z0, z1, segments),
                    _node_step,
                    self.tol if last else self.coarse_tol,
                    self.iterations if last else self.coarse_iterations,
                )
                iterations += result.iterations
                nodes = _node_points(z0, z1, segments)(result.params, torch.arange(B, device=z0.device))
            converged, reasons = result.converged.cpu().clone(), list(result.reasons)
            curve = interpolating_spline(nodes)
            stretch = _unresolved_stretch(manifold, curve, segments)
            for _ in range(self.extra_levels):
                finer = (stretch > REFINE_STRETCH).nonzero().flatten()
                if not len(finer):
                    break
                segments *= 2
                t = torch.linspace(0, 1, segments + 1, dtype=z0.dtype, device=z0.device)
                nodes = sample_curve(curve, t)  # the same cubic for the pairs left as they are
                a, b = z0[finer], z1[finer]
                result = gauss_newton_descent(
                    manifold, nodes[finer, 1:-1].reshape(len(finer), -1), _node_points(a, b, segments), _node_step,
                    self.tol, self.iterations,
                )
                iterations += result.iterations
                nodes[finer] = _node_points(a, b, segments)(result.params, torch.arange(len(finer), device=z0.device))
                curve = interpolating_spline(nodes)
                stretch[finer] = _unresolved_stretch(manifold, curve[finer], segments)
                for k, pair in enumerate(finer.tolist()):
                    converged[pair], reasons[pair] = result.converged[k].item(), result.reasons[k]
        for b in (converged & (stretch.cpu() > RESOLUTION_TOL)).nonzero().flatten().tolist():
            converged[b] = False
            reasons[b] = (
                f"the curve between the nodes is {stretch[b].item():.0%} longer than through them: the "
                f"{segments} segments do not resolve it (the decoder may fold back on itself); use finer levels"
            )
        return SolverOutput(curve, converged, iterations, reasons)


#: What :func:`lowest_start` compares its candidates by, on their nodes: "energy", the discrete energy
#: S = sum ||f(x_i+1) - f(x_i)||^2, or "length", the data-space polyline's length sum ||f(x_i+1) - f(x_i)||,
#: which does not depend on how evenly a candidate is parametrised.
START_MEASURES = ("energy", "length")


def lowest_start(
    manifold: DecoderManifold,
    z0: torch.Tensor,
    z1: torch.Tensor,
    t: torch.Tensor,
    also: Optional[torch.Tensor] = None,
    by: str = "energy",
) -> torch.Tensor:
    """Per pair, the candidate start whose nodes at t (N,) have the lowest energy or length (``by``).

    The candidates are the straight line, the shortest path between the pair's ends on the 10-NN
    graph of the manifold's latent codes (the ``graph`` solver, unrefined; only with 11 to
    :data:`GRAPH_START_POINTS` codes) and, if given, the nodes ``also`` (B, N, d) of another curve.
    A candidate whose measure is not finite is never taken; ties go to the earlier one in that order.

    Returns:
        (B, N, d) nodes.
    """
    check_choice("by", by, START_MEASURES)
    candidates = [line_points(z0, z1, t)]
    codes = manifold.latents
    paths = GraphSolver(refine=None)
    if codes is not None and paths.k < len(codes) <= GRAPH_START_POINTS:
        candidates.append(sample_curve(paths.solve(manifold, z0, z1).curve, t).to(z0))
    if also is not None:
        candidates.append(also.to(z0))
    if len(candidates) == 1:
        return candidates[0]
    nodes = torch.stack(candidates)  # (C, B, N, d)
    measure = torch.stack([node_value(manifold, c) if by == "energy" else manifold.curve_length(c) for c in candidates])
    lowest = torch.where(torch.isfinite(measure), measure, float("inf")).argmin(dim=0)
    return nodes[lowest, torch.arange(len(z0), device=z0.device)]


def _unresolved_stretch(manifold: DecoderManifold, curve: BasicCurve, segments: int) -> torch.Tensor:
    """(B,) relative growth of the data-space polyline length when the midpoints of the segments are added."""
    t = torch.linspace(0, 1, 2 * segments + 1, dtype=curve.begin.dtype, device=curve.begin.device)
    images = manifold.embed(sample_curve(curve, t))  # (B, 2n+1, D)
    fine = (images[:, 1:] - images[:, :-1]).norm(dim=-1).sum(dim=1)
    coarse = (images[:, 2::2] - images[:, :-2:2]).norm(dim=-1).sum(dim=1)
    return fine / coarse.clamp_min(torch.finfo(fine.dtype).tiny) - 1


def _node_points(z0: torch.Tensor, z1: torch.Tensor, segments: int):
    """points(params, index): interior nodes (b, (n-1) d) between the pairs' ends -> (b, n+1, d)."""

    def points(params: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        inner = params.view(len(index), segments - 1, -1)
        return torch.cat([z0[index].unsqueeze(1), inner, z1[index].unsqueeze(1)], dim=1)

    return points


def _node_step(
    params: torch.Tensor, index: torch.Tensor, system: NodeSystem, reach: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Gauss-Newton step in the nodes (one block-tridiagonal solve per pair), times reach."""
    delta = solve_block_tridiagonal(with_ridge(system), system.upper, system.rhs) * reach.view(-1, 1, 1)
    return (delta.flatten(1), *node_model(system, delta))
