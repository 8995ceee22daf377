"""Geodesics as a two-point boundary-value problem, solved by ``scipy.integrate.solve_bvp``.

The geodesic equation c'' = F(c, c') (``DecoderManifold.geodesic_system``) is
written as a first-order system in y = (c, c') of size 2d, with the boundary
conditions c(0) = z0 and c(1) = z1. scipy's collocation solver refines its
mesh until the relative collocation residual is below ``tol``. Everything is
evaluated in float64 on a deep copy of the manifold, so the caller's decoder
keeps its dtype. The solution is handed back as a
:class:`~vaemanifold.curves.HermiteCurve` on scipy's final mesh: the very
cubic-Hermite spline that scipy returns as ``sol.sol``, not a re-fit of it.
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch
from scipy.integrate import solve_bvp
from stochman.curves import BasicCurve

from ..curves import HermiteCurve
from ..manifold import DecoderManifold
from .base import GeodesicSolver, SolverOutput
from .registry import SOLVERS, make_solver


class GeodesicEquationError(ArithmeticError):
    """The right-hand side of the geodesic equation could not be evaluated (singular metric, NaN)."""


def geodesic_rhs(manifold: DecoderManifold, y: np.ndarray, device: torch.device) -> np.ndarray:
    """The first-order geodesic system at all mesh points in one batched call.

    Args:
        manifold: the (float64) manifold.
        y: (2d, m) states (c, c') at m mesh points, scipy's layout.
        device: where the manifold lives.

    Returns:
        (2d, m) derivatives (c', c'').

    Raises:
        GeodesicEquationError: the metric is singular or the result is not finite.
    """
    d = manifold.latent_dim
    state = torch.as_tensor(y.T, dtype=torch.float64, device=device)
    c, dc = state[:, :d].contiguous(), state[:, d:].contiguous()
    if not bool(torch.isfinite(state).all()):
        raise GeodesicEquationError("the solver's iterate is not finite")
    try:
        with torch.no_grad():
            acc = manifold.geodesic_system(c, dc)
    except torch.linalg.LinAlgError as error:
        if not bool(torch.isfinite(manifold.embed(c)).all()):
            raise GeodesicEquationError("the decoder returned non-finite values on the mesh") from error
        raise GeodesicEquationError(f"singular metric ({error})") from error
    if not bool(torch.isfinite(acc).all()):
        raise GeodesicEquationError("the geodesic equation is not finite (singular or ill-conditioned metric)")
    return np.vstack([y[d:], acc.T.cpu().numpy()])


def geodesic_bvp(
    manifold: DecoderManifold,
    z0: np.ndarray,
    z1: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    tol: float,
    max_nodes: int,
    device: torch.device = torch.device("cpu"),
):
    """One geodesic by ``scipy.integrate.solve_bvp``.

    Args:
        manifold: a float64 manifold (see :class:`ODESolver`).
        z0, z1: (d,) endpoints.
        t: (m,) initial mesh on [0, 1].
        y: (2d, m) initial guess of (c, c') on the mesh.
        tol, max_nodes: as in ``solve_bvp``.
        device: where the manifold lives.

    Returns:
        scipy's result (``status`` 0 on success, ``message``, ``x``, ``y``, ``sol``, ``niter``).

    Raises:
        GeodesicEquationError: from :func:`geodesic_rhs`.
    """
    d = len(z0)

    def bc(ya: np.ndarray, yb: np.ndarray) -> np.ndarray:
        return np.concatenate([ya[:d] - z0, yb[:d] - z1])

    return solve_bvp(lambda _, state: geodesic_rhs(manifold, state, device), bc, t, y, tol=tol, max_nodes=max_nodes)


class ODESolver(GeodesicSolver):
    """Solve the geodesic boundary-value problem with ``scipy.integrate.solve_bvp`` (float64).

    Pairs are solved one after another, each as its own 2d-dimensional system
    whose right-hand side is evaluated at all mesh points in one batched torch
    call. Stacking the B pairs into one 2dB-dimensional system would couple
    them: one hard pair would refine the mesh of all, a failure (mesh limit,
    singular Jacobian) would fail all, and scipy's dense per-node Jacobian
    blocks (estimated by 2dB + 1 right-hand-side calls, each costing all B
    pairs) grow quadratically in B, so the loop is also the cheaper choice.

    Options:
        tol: solve_bvp's relative collocation-residual tolerance (also used for
            the boundary conditions, which are linear, so Newton meets them
            exactly; default 1e-2). A geodesic is a critical point of length,
            so the length's error is second order in the curve's: from
            ``gauss_newton``'s curves, on the presets' 16 benchmark pairs each,
            tol 1e-2 gave the same p90 of dense length as 1e-4 (within 0.004%
            of the best known on ``mnist-2d``, 0.000% on ``mnist-8d`` and
            ``fashion-2d``) at 51 / 51 / 78 floors a pair instead of 200 / 245
            / 216: a tighter tol mostly buys mesh nodes. At 1e-6 scipy's mesh
            outgrew 1,000 nodes on 8 of 16 ``mnist-2d`` pairs.
        max_nodes: mesh nodes allowed per pair before giving up (default 1000).
        nodes: size of the initial uniform mesh (default 32).
        init_solver: the name of the registered solver whose curves give the
            initial positions and velocities (default 'gauss_newton'; from 'linear',
            scipy's mesh outgrows any node limit on trained decoders)
            (``curve.deriv`` where the curve has it, else finite differences on
            the mesh). An initial curve passed to :meth:`solve` (``init=`` of
            :func:`vaemanifold.connecting_geodesic`) takes precedence. (Not
            named ``init``: that argument of ``connecting_geodesic`` is the curve.)
        init_options: options for the ``init_solver``.

    A pair converges when solve_bvp reports success (status 0); otherwise, or
    when the metric is singular or the iterate is not finite, it is marked not
    converged with scipy's (or the evaluation's) message, and its curve is the
    initial guess. Converged curves are :class:`~vaemanifold.curves.HermiteCurve`\\ s
    on each pair's final mesh, in the endpoints' dtype, with the end values set to
    z0 and z1 exactly (solve_bvp meets them to within ``tol``).
    """

    name = "ode"

    def __init__(
        self,
        tol: float = 1e-2,
        max_nodes: int = 1000,
        nodes: int = 32,
        init_solver: str = "gauss_newton",
        init_options: Optional[dict] = None,
    ) -> None:
        if not tol > 0:
            raise ValueError(f"tol must be positive, got {tol}")
        if nodes < 2 or max_nodes < 2:
            raise ValueError(f"nodes and max_nodes must be >= 2, got {nodes} and {max_nodes}")
        if not isinstance(init_solver, str) or init_solver not in SOLVERS:
            raise ValueError(f"unknown init_solver {init_solver!r}; valid: {', '.join(sorted(SOLVERS))}")
        self.tol = float(tol)
        self.max_nodes = int(max_nodes)
        self.nodes = int(nodes)
        self.init_solver = init_solver
        self.init_options = dict(init_options or {})

    def _initial_curve(self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor) -> BasicCurve:
        return make_solver(self.init_solver, **self.init_options).solve(manifold, z0, z1).curve

    def solve(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        curve = init if init is not None else self._initial_curve(manifold, z0, z1)
        t = torch.linspace(0, 1, self.nodes, dtype=torch.float64)
        guess = initial_states(curve, t)  # (B, 2d, m)
        work = copy.deepcopy(manifold).double()
        counted = work.evaluations
        d, B = z0.shape[1], len(z0)
        ends = torch.stack([z0, z1], dim=1).detach().to("cpu", torch.float64).numpy()
        knots, values, slopes, reasons, iterations = [], [], [], [], 0
        for b in range(B):
            reason, solution = None, None
            if not np.isfinite(guess[b]).all():
                reason = "the initial guess is not finite"
            else:
                try:
                    solution = geodesic_bvp(
                        work, ends[b, 0], ends[b, 1], t.numpy(), guess[b], self.tol, self.max_nodes, z0.device
                    )
                    iterations = max(iterations, int(solution.niter))
                    if solution.status != 0:
                        reason = f"solve_bvp: {solution.message}"
                    elif not np.isfinite(solution.y).all():
                        reason = "solve_bvp returned non-finite values"
                except GeodesicEquationError as error:
                    reason = f"geodesic equation: {error}"
            if reason is None:
                mesh, states = solution.x, solution.y
            else:
                mesh, states = t.numpy(), guess[b]
            knots.append(mesh)
            values.append(np.concatenate([ends[b, :1], states[:d, 1:-1].T, ends[b, 1:]]))
            slopes.append(states[d:].T)
            reasons.append(reason)
        manifold.evaluations += work.evaluations - counted
        out = hermite_from_meshes(knots, values, slopes, z0)
        converged = torch.tensor([r is None for r in reasons], dtype=torch.bool)
        return SolverOutput(out, converged, iterations, reasons)


def initial_states(curve: BasicCurve, t: torch.Tensor) -> np.ndarray:
    """(B, 2d, m) float64 states (c, c') of B curves on the mesh t (m,).

    Velocities come from ``curve.deriv`` where the curve has one, else from
    second-order finite differences of the positions on the mesh.
    """
    with torch.no_grad():
        tt = t.to(curve.begin)
        c = curve(tt).reshape(len(curve), len(t), -1).to("cpu", torch.float64).numpy()
        deriv = getattr(curve, "deriv", None)
        if callable(deriv):
            dc = deriv(tt).reshape(c.shape).to("cpu", torch.float64).numpy()
        else:
            dc = np.gradient(c, t.numpy(), axis=1, edge_order=2)
    return np.concatenate([c, dc], axis=2).transpose(0, 2, 1)


def hermite_from_meshes(
    knots: list[np.ndarray], values: list[np.ndarray], slopes: list[np.ndarray], like: torch.Tensor
) -> HermiteCurve:
    """One :class:`HermiteCurve` from B per-pair meshes, padded to the longest.

    Args:
        knots: B arrays (m_b,); values, slopes: B arrays (m_b, d).
        like: a tensor whose dtype and device the curve takes.
    """
    counts = [len(k) for k in knots]
    B, K, d = len(knots), max(counts), values[0].shape[1]
    T, V, S = np.ones((B, K)), np.empty((B, K, d)), np.empty((B, K, d))
    for b, m in enumerate(counts):
        T[b, :m], V[b, :m], S[b, :m] = knots[b], values[b], slopes[b]
        V[b, m:], S[b, m:] = values[b][-1], slopes[b][-1]
    tensors = (torch.as_tensor(a, dtype=like.dtype, device=like.device) for a in (T, V, S))
    return HermiteCurve(*tensors, torch.as_tensor(counts, device=like.device))
