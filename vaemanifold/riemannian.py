"""A decoder's latent space as a geoopt manifold, and the Fréchet (Karcher) mean on it.

:class:`LatentManifold` presents the latent space of a
:class:`~vaemanifold.DecoderManifold` to geoopt: an open subset of R^d (so
projections are the identity and the retraction is z + u) carrying the
pull-back metric M(z). geoopt's optimisers (``RiemannianSGD``,
``RiemannianAdam``) then follow the Riemannian gradient M(z)^{-1} egrad of any
loss of ``geoopt.ManifoldParameter`` tensors placed on it.

Distances are lengths of connecting geodesics (any solver of
:data:`vaemanifold.SOLVERS`), and they are differentiable in both end points
by the first variation of arc length. For a geodesic c from x to y of length
L = d(x, y) and unit initial/final directions u0 = c'(0)/||c'(0)||_M(x),
u1 = c'(1)/||c'(1)||_M(y),

    dL = <u1, dy>_M(y) - <u0, dx>_M(x),

(the interior variation vanishes because c is a geodesic), so the Euclidean
(coordinate) gradients are dL/dx = -M(x) u0 and dL/dy = M(y) u1. The
logarithm map is Log_x(y) = L u0: the initial velocity of the constant-speed
geodesic on [0, 1], which has metric norm L. Only the *direction* of c'(0) is
used, so a solver's curve need not have constant speed. Chaining
d(L^2) = 2 L dL gives the classic gradient of the squared distance,
grad_x d^2(x, y) = -2 Log_x(y) (Riemannian) or -2 M(x) Log_x(y) (Euclidean),
with the right sign (stochman's ``squared_manifold_distance`` has it wrong).
The decoder is treated as fixed: no gradient flows into its weights.

The Fréchet mean of points z_i with weights w_i minimises
F(m) = sum_i w_i d^2(m, z_i) / sum_i w_i, whose Riemannian gradient is
-2 sum_i w_i Log_m(z_i) / sum_i w_i. Riemannian SGD at learning rate 1/2 with
the retraction z + u is therefore the standard Karcher iteration
m <- m + mean_i Log_m(z_i) (with the retraction in place of Exp);
:func:`frechet_mean` backtracks that step when it does not decrease F.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Union

import geoopt
import torch
from geoopt.manifolds.base import Manifold

from ._checks import check_choice, check_points
from .geodesic import GeodesicResult, connecting_geodesic
from .manifold import DecoderManifold
from .solvers import GeodesicSolver

#: What a pair whose geodesic did not converge gets, an error or the use of its (unconverged) curve.
FAILURE_POLICIES = ("raise", "keep")


@dataclass
class Geodesics:
    """Connecting geodesics of B pairs, as needed by distances and log maps.

    Attributes:
        length: (B,) metric lengths (0 where x == y).
        start: (B, d) unit (in M(x)) initial directions u0, zero where x == y.
        end: (B, d) unit (in M(y)) final directions u1, zero where x == y.
        unconverged: pairs whose solver did not converge (their curves were kept).
        result: the solver's :class:`~vaemanifold.GeodesicResult` for the pairs with x != y, or None.
    """

    length: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    unconverged: int
    result: Optional[GeodesicResult]


def _broadcast(*tensors: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Size]:
    """Broadcast (..., d) tensors together and flatten them to (B, d); also return the leading shape."""
    full = torch.broadcast_tensors(*tensors)
    lead = full[0].shape[:-1]
    return tuple(t.reshape(-1, t.shape[-1]) for t in full), lead


class _GeodesicLength(torch.autograd.Function):
    """L(x, y) for (B, d) x, y with the first-variation gradients (see the module docstring)."""

    @staticmethod
    def forward(ctx, latent: "LatentManifold", x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        geo = latent.geodesics(x, y)
        ctx.latent = latent
        ctx.save_for_backward(x, y, geo.start, geo.end)
        return geo.length

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, y, u0, u1 = ctx.saved_tensors
        latent: LatentManifold = ctx.latent
        gx = gy = None
        if ctx.needs_input_grad[1]:
            gx = -grad.unsqueeze(-1) * (latent.metric(x) @ u0.unsqueeze(-1)).squeeze(-1)
        if ctx.needs_input_grad[2]:
            gy = grad.unsqueeze(-1) * (latent.metric(y) @ u1.unsqueeze(-1)).squeeze(-1)
        return None, gx, gy


class LatentManifold(Manifold):
    """The latent space of a decoder with its pull-back metric, as a ``geoopt.Manifold``.

    Args:
        manifold: the :class:`~vaemanifold.DecoderManifold`.
        method: geodesic solver for ``dist``, ``dist2`` and ``logmap`` (a name
            in :data:`vaemanifold.SOLVERS` or a solver instance; default 'spline').
        on_failure: 'raise' (default) when a geodesic does not converge, or
            'keep' its curve (then ``dist`` is an upper bound and ``logmap``
            approximate); ``last_unconverged`` counts such pairs of the last call.
        expmap_options: options of ``torchdiffeq.odeint`` for :meth:`expmap`
            (default dopri5, rtol 1e-7, atol 1e-9).
        **options: options of the solver (as for :func:`vaemanifold.connecting_geodesic`).

    Points and tangent vectors are (..., d) coordinate tensors. The tangent
    space at every point is R^d, ``proju``/``projx`` are identities,
    ``retr(x, u) = x + u`` and vector transport is the identity on
    coordinates (a valid vector transport on an open subset of R^d, not the
    parallel transport of the metric). ``expmap`` integrates the geodesic
    equation; ``dist``, ``dist2`` and ``logmap`` solve boundary-value problems.
    """

    __scaling__ = Manifold.__scaling__.copy()
    name = "LatentManifold"
    ndim = 1
    reversible = False

    def __init__(
        self,
        manifold: DecoderManifold,
        method: Union[str, GeodesicSolver] = "spline",
        on_failure: str = "raise",
        expmap_options: Optional[dict] = None,
        **options,
    ) -> None:
        if not isinstance(manifold, DecoderManifold):
            raise TypeError(f"manifold must be a DecoderManifold, got {type(manifold).__name__}")
        check_choice("on_failure", on_failure, FAILURE_POLICIES)
        super().__init__()
        self.manifold = manifold
        self.method = method
        self.options = dict(options)
        self.on_failure = on_failure
        self.expmap_options = {"method": "dopri5", "rtol": 1e-7, "atol": 1e-9, **(expmap_options or {})}
        self.last_unconverged = 0

    @property
    def latent_dim(self) -> int:
        return self.manifold.latent_dim

    def extra_repr(self) -> str:
        return f"d={self.latent_dim}, method={self.method!r}"

    # ------------------------------------------------------------------ metric
    def metric(self, x: torch.Tensor) -> torch.Tensor:
        """M(x): (..., d) -> (..., d, d)."""
        check_points(x, self.latent_dim, "x")
        return self.manifold.metric(x)

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: Optional[torch.Tensor] = None, *, keepdim: bool = False):
        """u^T M(x) v (v = u when omitted), broadcast over leading dimensions: (...,) or (..., 1)."""
        v = u if v is None else v
        (x, u, v), lead = _broadcast(x, u, v)
        out = torch.einsum("bi,bij,bj->b", u, self.metric(x), v).reshape(lead)
        return out.unsqueeze(-1) if keepdim else out

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The Riemannian gradient M(x)^{-1} u of a Euclidean (coordinate) gradient u: (..., d)."""
        (x, u), lead = _broadcast(x, u)
        return torch.linalg.solve(self.metric(x), u.unsqueeze(-1)).squeeze(-1).reshape(*lead, -1)

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return u.expand(torch.broadcast_shapes(x.shape, u.shape))

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x + u

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v.expand(torch.broadcast_shapes(y.shape, v.shape))

    def _check_point_on_manifold(self, x: torch.Tensor, *, atol=1e-5, rtol=1e-5):
        if x.shape[-1] != self.latent_dim:
            return False, f"last dimension {x.shape[-1]} is not the latent dimension {self.latent_dim}"
        if not bool(torch.isfinite(x).all()):
            return False, "point has NaN or infinite coordinates"
        return True, None

    def _check_vector_on_tangent(self, x: torch.Tensor, u: torch.Tensor, *, atol=1e-5, rtol=1e-5):
        if u.shape[-1] != self.latent_dim:
            return False, f"last dimension {u.shape[-1]} is not the latent dimension {self.latent_dim}"
        if not bool(torch.isfinite(u).all()):
            return False, "vector has NaN or infinite coordinates"
        return True, None

    # --------------------------------------------------------------- geodesics
    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Exp_x(u): integrate c'' = -M^{-1} J^T D^2f[c', c'] from (x, u) over t in [0, 1]: (..., d)."""
        from torchdiffeq import odeint

        (x, u), lead = _broadcast(x, u)
        d = self.latent_dim

        def field_(_, state: torch.Tensor) -> torch.Tensor:
            c, dc = state[:, :d], state[:, d:]
            return torch.cat([dc, self.manifold.geodesic_system(c, dc)], dim=-1)

        t = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
        with self.manifold.frozen(), torch.no_grad():
            end = odeint(field_, torch.cat([x, u], dim=-1), t, **self.expmap_options)[-1]
        return end[:, :d].reshape(*lead, d)

    def geodesics(self, x: torch.Tensor, y: torch.Tensor) -> Geodesics:
        """Connecting geodesics from x[b] to y[b], (B, d) each (no gradient).

        Raises:
            RuntimeError: a geodesic did not converge and ``on_failure`` is 'raise'.
        """
        check_points(x, self.latent_dim, "x")
        check_points(y, self.latent_dim, "y")
        x, y = x.detach(), y.detach()
        length = x.new_zeros(len(x))
        start, end = torch.zeros_like(x), torch.zeros_like(x)
        moving = (x != y).any(dim=-1)
        result = None
        unconverged = 0
        if bool(moving.any()):
            a, b = x[moving], y[moving]
            with torch.enable_grad():  # energy-minimising solvers need autograd, also inside Function.forward
                result = connecting_geodesic(self.manifold, a, b, method=self.method, **self.options)
            failed = (~result.converged).nonzero().flatten().tolist()
            if failed and self.on_failure == "raise":
                raise RuntimeError(
                    f"{len(failed)} of {len(result)} geodesics did not converge (first: {result.reasons[failed[0]]}); "
                    "change the solver's options or use on_failure='keep'"
                )
            unconverged = len(failed)
            ends = torch.tensor([0.0, 1.0], dtype=a.dtype, device=a.device)
            with torch.no_grad():
                velocity = result.curve.deriv(ends).reshape(len(a), 2, -1).to(a)
                v0, v1 = velocity[:, 0], velocity[:, 1]
                v0 = v0 / self.inner(a, v0).clamp_min(torch.finfo(a.dtype).tiny).sqrt().unsqueeze(-1)
                v1 = v1 / self.inner(b, v1).clamp_min(torch.finfo(a.dtype).tiny).sqrt().unsqueeze(-1)
            length[moving] = result.length.to(length)
            start[moving], end[moving] = v0, v1
        self.last_unconverged = unconverged
        return Geodesics(length, start, end, unconverged, result)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Geodesic distance, differentiable in x and y (first variation): (...,) or (..., 1)."""
        (x, y), lead = _broadcast(x, y)
        out = _GeodesicLength.apply(self, x, y).reshape(lead)
        return out.unsqueeze(-1) if keepdim else out

    def dist2(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        """Squared geodesic distance; its gradient in x is -2 M(x) Log_x(y)."""
        return self.dist(x, y, keepdim=keepdim) ** 2

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log_x(y) = d(x, y) u0, u0 the geodesic's unit initial direction: (..., d)."""
        (x, y), lead = _broadcast(x, y)
        geo = self.geodesics(x, y)
        return (geo.length.unsqueeze(-1) * geo.start).reshape(*lead, -1)


@dataclass
class FrechetMean:
    """Result of :func:`frechet_mean`.

    Attributes:
        mean: (d,) the Fréchet mean.
        value: F(mean), the weighted mean squared geodesic distance to the points.
        gradient_norm: |mean_i w_i Log_mean(z_i)|_M at the returned mean (half the
            Riemannian gradient's norm; the step a Karcher iteration would take).
        converged: whether gradient_norm <= tol * sqrt(value).
        reason: None when converged, else why not.
        iterations: accepted optimiser steps.
        evaluations: evaluations of F (each solves N geodesics), backtracking included.
        seconds: wall time.
        history: per accepted iterate: ``value``, ``gradient_norm``, ``lr`` of the step
            that reached it, ``unconverged`` geodesics.
    """

    mean: torch.Tensor
    value: float
    gradient_norm: float
    converged: bool
    reason: Optional[str]
    iterations: int
    evaluations: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def frechet_mean(
    latent: LatentManifold,
    points: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
    init: Optional[torch.Tensor] = None,
    lr: float = 0.5,
    iterations: int = 50,
    tol: float = 1e-4,
    max_halvings: int = 8,
) -> FrechetMean:
    """Fréchet (Karcher) mean of latent points by Riemannian gradient descent (geoopt).

    Minimises F(m) = sum_i w_i d^2(m, z_i) / sum_i w_i over a
    ``geoopt.ManifoldParameter`` on ``latent`` with ``geoopt.optim.RiemannianSGD``;
    every evaluation solves the N geodesics from m to the points in one batch.
    At lr 1/2 a step is the Karcher iteration m <- m + mean_i w_i Log_m(z_i).
    In a strongly curved latent space that full step can overshoot (the
    retraction z + u is only a first-order approximation of Exp), so each
    step starts at ``lr`` and is halved, up to ``max_halvings`` times, until F
    decreases (monotone backtracking).

    Args:
        latent: a :class:`LatentManifold` (its solver and options are used).
        points: (N, d) latent points.
        weights: optional (N,) non-negative weights (default uniform).
        init: (d,) start (default: the weighted Euclidean mean of the points).
        lr: initial learning rate of every step.
        iterations: maximum accepted steps.
        tol: converged when |mean_i w_i Log_m(z_i)|_M <= tol * sqrt(F(m)) (relative to the spread).
        max_halvings: backtracking halvings per step before giving up.

    Returns:
        a :class:`FrechetMean`.
    """
    if not isinstance(latent, LatentManifold):
        raise TypeError(f"latent must be a LatentManifold, got {type(latent).__name__}")
    check_points(points, latent.latent_dim, "points")
    if points.dim() != 2 or len(points) == 0:
        raise ValueError(f"points must be (N, d) with N >= 1, got shape {tuple(points.shape)}")
    if weights is None:
        weights = torch.ones(len(points), dtype=points.dtype, device=points.device)
    if weights.shape != (len(points),) or bool((weights < 0).any()) or not float(weights.sum()) > 0:
        raise ValueError(f"weights must be ({len(points)},), non-negative, with a positive sum")
    if lr <= 0 or iterations < 1 or tol <= 0 or max_halvings < 0:
        raise ValueError(
            f"need lr > 0, iterations >= 1, tol > 0, max_halvings >= 0; got {lr}, {iterations}, {tol}, {max_halvings}"
        )
    points = points.detach()
    w = (weights / weights.sum()).to(points)
    start = (w.unsqueeze(-1) * points).sum(dim=0) if init is None else check_points(init, latent.latent_dim, "init")
    if start.shape != (latent.latent_dim,):
        raise ValueError(f"init must be ({latent.latent_dim},), got {tuple(start.shape)}")

    m = geoopt.ManifoldParameter(start.detach().clone(), manifold=latent)
    opt = geoopt.optim.RiemannianSGD([m], lr=lr)
    clock = time.perf_counter()
    evaluations = 0

    def evaluate() -> float:
        nonlocal evaluations
        evaluations += 1
        opt.zero_grad()
        value = (w * latent.dist2(m.unsqueeze(0), points)).sum()
        value.backward()
        return value.item()

    def half_gradient_norm() -> float:
        with torch.no_grad():
            return latent.norm(m, -0.5 * latent.egrad2rgrad(m, m.grad)).item()  # |mean_i w_i Log_m(z_i)|_M

    value = evaluate()
    history = [{"value": value, "gradient_norm": half_gradient_norm(), "lr": None, "unconverged": latent.last_unconverged}]
    steps, converged, reason = 0, False, None
    while True:
        norm = history[-1]["gradient_norm"]
        if norm <= tol * max(value, 0.0) ** 0.5:
            converged = True
            break
        if not (math.isfinite(value) and bool(torch.isfinite(m.grad).all())):
            reason = "the objective or its gradient is not finite"
            break
        if steps == iterations:
            reason = f"|mean Log| = {norm:.2e} > tol * sqrt(F) = {tol * value ** 0.5:.2e} after {steps} steps"
            break
        point, grad = m.detach().clone(), m.grad.clone()
        step_lr = lr
        for _ in range(max_halvings + 1):
            opt.param_groups[0]["lr"] = step_lr
            opt.step()
            candidate = evaluate()
            if candidate < value:
                break
            with torch.no_grad():
                m.copy_(point)
                m.grad = grad.clone()
            step_lr /= 2
        else:
            reason = f"no decrease of F along the gradient after {max_halvings} halvings of lr (|mean Log| = {norm:.2e})"
            break
        steps += 1
        value = candidate
        history.append(
            {"value": value, "gradient_norm": half_gradient_norm(), "lr": step_lr, "unconverged": latent.last_unconverged}
        )
    return FrechetMean(
        mean=m.detach().clone(),
        value=value,
        gradient_norm=history[-1]["gradient_norm"],
        converged=converged,
        reason=reason,
        iterations=steps,
        evaluations=evaluations,
        seconds=time.perf_counter() - clock,
        history=history,
    )
