"""Curve energy as a nonlinear least-squares problem, solved by damped Gauss-Newton steps.

A curve sampled at n + 1 equally spaced times, nodes x_0 = z0, x_1, ..., x_n = z1,
has the discrete energy E = n * S with

    S = sum_i ||r_i||^2,    r_i = f(x_{i+1}) - f(x_i)    (i = 0 .. n-1),

f = concat(mu, sigma) the decoder embedding. With J_k the (D, d) Jacobian of f
at the interior node x_k (k = 1 .. n-1, m = n - 1 of them), the Gauss-Newton
model of S in the interior nodes is block tridiagonal (:class:`NodeSystem`):

    A_kk = 2 J_k^T J_k,    A_k,k+1 = -J_k^T J_k+1,    b_k = J_k^T (r_k - r_k-1) = -dS/dx_k / 2,

and S(x + delta) ~ S(x) - 2 b.delta + delta^T A delta. Only the node Jacobians
are needed: d forward-mode JVPs per node, never a second derivative of f.

:func:`gauss_newton_descent` minimises S over any parametrisation of the nodes
(the nodes themselves, or the weights of a curve family whose points at the
sample times are a differentiable function of them), batched over B pairs
with everything per pair: damping, step acceptance, convergence, and
freezing of the pairs that are done. A pair's iterates do not depend on its
batch-mates (up to floating-point rounding of batched kernels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..manifold import DecoderManifold

#: Ridge added to the Gauss-Newton matrix, relative to its mean diagonal (keeps it positive definite).
RIDGE = 1e-8
#: solve_block_tridiagonal assembles the matrices and factorises them densely when b (m d)^2 is at most
#: this (b pairs of m blocks of d unknowns); above it, cyclic reduction is faster. Measured (one thread):
#: d = 2, m = 63: dense 0.13 / 0.39 / 1.48 ms for b = 1 / 4 / 16, cyclic reduction 0.65 / 0.77 / 0.97;
#: d = 8, m = 15: 0.11 / 0.32 / 1.29 against 0.42 / 0.52 / 0.85; d = 8, m = 63, b = 1: 0.99 against 0.78.
DENSE_SOLVE = 2**17
#: A pair whose step length falls below this fraction of the Gauss-Newton step without a decrease has stalled.
MIN_REACH = 1e-4


@dataclass
class NodeSystem:
    """The Gauss-Newton model of S at the current nodes of b pairs (see the module docstring).

    Attributes:
        value: (b,) S = sum_i ||f(x_i+1) - f(x_i)||^2.
        diag: (b, m, d, d) blocks A_kk.
        upper: (b, m-1, d, d) blocks A_k,k+1 (the lower ones are their transposes).
        rhs: (b, m, d) b_k, half the negative gradient of S.
    """

    value: torch.Tensor
    diag: torch.Tensor
    upper: torch.Tensor
    rhs: torch.Tensor

    def take(self, index: torch.Tensor) -> "NodeSystem":
        """The systems of the pairs ``index`` (positions in this batch)."""
        return NodeSystem(self.value[index], self.diag[index], self.upper[index], self.rhs[index])

    def put(self, index: torch.Tensor, other: "NodeSystem") -> None:
        """Overwrite the systems of the pairs ``index`` with ``other``'s (same node count)."""
        for name in ("value", "diag", "upper", "rhs"):
            getattr(self, name)[index] = getattr(other, name)


def node_system(manifold: DecoderManifold, points: torch.Tensor) -> NodeSystem:
    """The Gauss-Newton model of S at nodes ``points`` (b, n+1, d), n >= 2."""
    if points.dim() != 3 or points.shape[1] < 3:
        raise ValueError(f"points must be (b, n+1, d) with n >= 2, got {tuple(points.shape)}")
    b, m, d = points.shape[0], points.shape[1] - 2, points.shape[2]
    f_inner, J = manifold.embed(points[:, 1:-1], jacobian=True)  # (b, m, D), (b, m, D, d)
    f_ends = manifold.embed(points[:, [0, -1]])  # (b, 2, D)
    f = torch.cat([f_ends[:, :1], f_inner, f_ends[:, 1:]], dim=1)
    r = f.diff(dim=1)  # (b, n, D)
    # All products as single batched matmuls over the b * m nodes: (b * m, d, D) is a view of the
    # tangent-major Jacobian that embed returns, and the coupling of node k with node k + 1 is row k
    # times row k + 1 of it (at a pair's last node that pairs it with the next pair's first: dropped).
    # The same products on the (b, m, ...) slices ran 10x slower (they cannot be flattened into one batch).
    rows = J.transpose(-1, -2).reshape(b * m, d, -1)
    coupling = rows[:-1] @ rows[1:].transpose(-1, -2)  # (b * m - 1, d, d)
    upper = torch.cat([coupling, coupling[:1]]).view(b, m, d, d)[:, :-1]
    rhs = (rows @ (r[:, 1:] - r[:, :-1]).reshape(b * m, -1, 1)).view(b, m, d)  # -dS/dx / 2
    return NodeSystem(
        value=(r**2).sum(dim=(1, 2)),
        diag=2 * (rows @ rows.transpose(-1, -2)).view(b, m, d, d),
        upper=-upper,
        rhs=rhs,
    )


def node_value(manifold: DecoderManifold, points: torch.Tensor) -> torch.Tensor:
    """S at nodes ``points`` (b, n+1, d): (b,). One decoder evaluation per node."""
    return (manifold.embed(points).diff(dim=1) ** 2).sum(dim=(1, 2))


def block_tridiagonal_matmul(diag: torch.Tensor, upper: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A x for the symmetric block-tridiagonal A of (diag, upper).

    Args:
        diag: (b, m, d, d); upper: (b, m-1, d, d).
        x: (b, m, d, p).

    Returns:
        (b, m, d, p).
    """
    out = diag @ x
    out[:, :-1] += upper @ x[:, 1:]
    out[:, 1:] += upper.transpose(-1, -2) @ x[:, :-1]
    return out


def solve_block_tridiagonal(diag: torch.Tensor, upper: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve A x = rhs for symmetric positive-definite block-tridiagonal A, batched over b.

    Block cyclic reduction: every round eliminates the even-numbered unknowns
    of all pairs at once (one batched (d, d) solve for all of them), which
    leaves a block-tridiagonal system half the size; log2(m) rounds down and
    as many back up, instead of m sequential steps. Stable for SPD A (each
    round's system is a Schur complement of the previous one).

    Small systems (b (m d)^2 <= :data:`DENSE_SOLVE`) are solved as one dense
    Cholesky factorisation per pair instead: fewer, larger operations.

    Args:
        diag: (b, m, d, d) diagonal blocks; upper: (b, m-1, d, d) blocks A_k,k+1.
        rhs: (b, m, d).

    Returns:
        (b, m, d); non-finite for a pair whose matrix is not positive definite.
    """
    b, m, d, _ = diag.shape
    if b * (m * d) ** 2 <= DENSE_SOLVE:
        return _dense_solve(diag, upper, rhs)
    size = 1
    while size < m:  # pad to 2^p - 1 unknowns with decoupled identity blocks
        size = 2 * size + 1
    if size > m:
        eye = torch.eye(d, dtype=diag.dtype, device=diag.device).expand(b, size - m, d, d)
        diag = torch.cat([diag, eye], dim=1)
        upper = torch.cat([upper, upper.new_zeros(b, size - m, d, d)], dim=1)
        rhs = torch.cat([rhs, rhs.new_zeros(b, size - m, d)], dim=1)
    return _cyclic_reduction(diag, upper, rhs)[:, :m]


def _dense_solve(diag: torch.Tensor, upper: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """solve_block_tridiagonal by a Cholesky factorisation of the assembled (b, m d, m d) matrices."""
    b, m, d, _ = diag.shape
    A = diag.new_zeros(b, m, d, m, d)
    k = torch.arange(m, device=diag.device)
    A[:, k, :, k, :] = diag.transpose(0, 1)
    A[:, k[:-1], :, k[1:], :] = upper.transpose(0, 1)
    A[:, k[1:], :, k[:-1], :] = upper.transpose(-1, -2).transpose(0, 1)
    factor, info = torch.linalg.cholesky_ex(A.view(b, m * d, m * d))
    x = torch.cholesky_solve(rhs.reshape(b, m * d, 1), factor).view(b, m, d)
    return torch.where((info == 0).view(b, 1, 1), x, torch.full_like(x, float("nan")))


def _cyclic_reduction(diag: torch.Tensor, upper: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """solve_block_tridiagonal for m = 2^p - 1 unknowns."""
    b, m, d, _ = diag.shape
    if m == 1:
        return torch.linalg.solve_ex(diag[:, 0], rhs[:, 0].unsqueeze(-1))[0].squeeze(-1).unsqueeze(1)
    zero = upper.new_zeros(b, 1, d, d)
    coupling = torch.cat([zero, upper, zero], dim=1)  # coupling[k] couples unknowns k-1 and k
    left, right = coupling[:, 0::2][:, : (m + 1) // 2], coupling[:, 1::2]  # at the even unknowns 0, 2, ..
    stacked = torch.cat([left.transpose(-1, -2), right, rhs[:, 0::2].unsqueeze(-1)], dim=-1)
    solved = torch.linalg.solve_ex(diag[:, 0::2], stacked)[0]  # D_e^-1 [L_e, U_e, b_e]
    A, B, c = solved[..., :d], solved[..., d : 2 * d], solved[..., -1]
    to_left, to_right = coupling[:, 1:-1:2], coupling[:, 2::2]  # at the odd unknowns k: U_k-1, U_k
    reduced_diag = diag[:, 1::2] - to_left.transpose(-1, -2) @ B[:, :-1] - to_right @ A[:, 1:]
    reduced_upper = -(to_right[:, :-1] @ B[:, 1:-1])
    reduced_rhs = (
        rhs[:, 1::2]
        - (to_left.transpose(-1, -2) @ c[:, :-1].unsqueeze(-1)).squeeze(-1)
        - (to_right @ c[:, 1:].unsqueeze(-1)).squeeze(-1)
    )
    odd = _cyclic_reduction(reduced_diag, reduced_upper, reduced_rhs)  # (b, (m-1)/2, d)
    padded = torch.cat([odd.new_zeros(b, 1, d), odd, odd.new_zeros(b, 1, d)], dim=1)
    even = c - (A @ padded[:, :-1].unsqueeze(-1)).squeeze(-1) - (B @ padded[:, 1:].unsqueeze(-1)).squeeze(-1)
    x = torch.empty_like(rhs)
    x[:, 0::2], x[:, 1::2] = even, odd
    return x


#: points(params, index) -> (b, n+1, d): the nodes of the pairs ``index`` for parameters (b, P).
PointsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: step(params, index, system, reach) -> (delta (b, P), slope (b,), curvature (b,)): a step whose size
#: grows with each pair's ``reach`` (reach 1: the step the method stands behind), and the model
#: S(params + a delta) ~ S - 2 a slope + a^2 curvature with slope = b.delta and curvature = delta^T A delta.
StepFn = Callable[
    [torch.Tensor, torch.Tensor, NodeSystem, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]


@dataclass
class DescentResult:
    """Outcome of :func:`gauss_newton_descent` for B pairs.

    Attributes:
        params: (B, P) final parameters (the last accepted step of each pair).
        value: (B,) S at ``params``.
        converged: (B,) bool.
        reasons: per pair, None where converged, else why not.
        iterations: steps taken by the pair that took the most.
    """

    params: torch.Tensor
    value: torch.Tensor
    converged: torch.Tensor
    reasons: list[Optional[str]]
    iterations: int


@torch.no_grad()
def gauss_newton_descent(
    manifold: DecoderManifold,
    params: torch.Tensor,
    points: PointsFn,
    step: StepFn,
    tol: float,
    iterations: int,
    max_reach: float = 1.0,
    rule: str = "line",
) -> DescentResult:
    """Minimise S over parameters (B, P) by damped Gauss-Newton steps, every decision per pair.

    Each iteration asks ``step`` for the damped Gauss-Newton steps of the
    active pairs at their ``reach``, evaluates S at the trial points (one
    decoder pass per node) and accepts the pairs whose S decreased. A pair's
    reach is its damping, adapted by ``rule``: 'line' retries a rejected step
    at a smaller reach (the minimum of the parabola through S(0), its slope
    and S(trial), within [0.1, 0.5] of the last reach) and after an accepted
    one takes that minimum too, within [0.5, 2] of the last; 'levenberg'
    treats reach as 1 / lambda under Nielsen's rule (by the gain ratio of
    actual to predicted decrease after an acceptance, by 2, 4, 8, ... after
    rejections). Reach never exceeds ``max_reach``.
    Where a step at reach >= 1 decreased S by more than the model predicted,
    the parabola's minimum beyond it is tried too (at most MAX_STRETCH times the step).

    What reach means is the step's business: the node solver scales its
    Gauss-Newton step by it (max_reach 1), which keeps the Gauss-Newton
    direction. On a discretised curve Levenberg's lambda * I would throttle
    the smooth, long-wavelength modes (eigenvalues ~ (pi / n)^2 of the others)
    that a curve far from its geodesic must move (measured on fashion-2d:
    Levenberg-Marquardt crawled 0.3% a step for 100+ steps). A curve family
    with more parameters than sampled coordinates has a singular matrix and
    needs Levenberg's damping, lambda ~ 1 / reach
    (:class:`~vaemanifold.solvers.energy.EnergySolver`).

    A pair converges when a step at reach >= 1 changes S by less than ``tol``
    relative and its model predicts less than that; it then stops (its
    Jacobians are no longer computed). Pairs whose S is not finite at the
    start, or whose steps shrink below :data:`MIN_REACH` without a decrease,
    stop unconverged with the reason.

    Args:
        params: (B, P) initial parameters (not modified).
        points: maps parameters of some pairs to their nodes.
        step: the damped Gauss-Newton step in parameter space (see :data:`StepFn`).
        tol: relative change of S that counts as converged.
        iterations: maximum steps (tried steps, accepted or not).
        max_reach: largest reach.
        rule: 'line' or 'levenberg' (see above).
    """
    if rule not in ("line", "levenberg"):
        raise ValueError(f"unknown rule {rule!r}; valid: 'line', 'levenberg'")
    params = params.clone()
    B = len(params)
    everyone = torch.arange(B, device=params.device)
    system = node_system(manifold, points(params, everyone))
    value = system.value.clone()
    reach = torch.ones_like(value)
    growth = torch.full_like(value, 2.0)
    converged = torch.zeros(B, dtype=torch.bool, device=params.device)
    reasons: list[Optional[str]] = [None] * B
    last_change = torch.full_like(value, float("inf"))
    nonfinite_trial = torch.zeros(B, dtype=torch.bool, device=params.device)
    finite = torch.isfinite(value) & torch.isfinite(system.diag).flatten(1).all(dim=1)
    for b in (~finite).nonzero().flatten().tolist():
        reasons[b] = "the decoder returned non-finite values (or Jacobians) on the initial curve"
    converged |= finite & (value == 0)  # S >= 0: a constant curve (z0 = z1) is already the minimum
    active = everyone[finite & ~converged]
    taken = 0
    while len(active) and taken < iterations:
        taken += 1
        delta, slope, curvature = step(params[active], active, system.take(active), reach[active])
        finite_step = torch.isfinite(delta).all(dim=1) & torch.isfinite(slope) & torch.isfinite(curvature)
        if not finite_step.all():  # a singular system: its step would not change, so the pair stops here
            for b in active[~finite_step].tolist():
                reasons[b] = "Gauss-Newton stopped: the step was not finite (a singular system)"
            active, delta, slope, curvature = (x[finite_step] for x in (active, delta, slope, curvature))
            if not len(active):
                break
        length = reach[active]
        predicted = 2 * slope - curvature
        old = value[active]
        trial = params[active] + delta
        new_value = node_value(manifold, points(trial, active))
        full = length >= 1
        trial, new_value = _extrapolate(manifold, points, active, params[active], delta, trial, old, new_value, slope, full)
        actual = old - new_value
        ok = torch.isfinite(new_value) & torch.isfinite(predicted) & (actual > 0)
        nonfinite_trial[active] = ~torch.isfinite(new_value)
        if rule == "line":
            # the minimum of the parabola through S(0), its slope and S(trial), as a multiple of this
            # step, sets the next reach: shorter after a rejection, up to twice as long after an acceptance
            bend = (new_value - old + 2 * slope).clamp_min(torch.finfo(old.dtype).tiny)
            best = torch.nan_to_num(slope / bend, nan=0.1, posinf=2.0)
            grown = (length * best.clamp(0.5, 2.0)).clamp_max(max_reach)
            reach[active] = torch.where(ok, grown, length * best.clamp(0.1, 0.5))
        else:  # Nielsen's rule on reach = 1 / lambda: by the gain ratio after an acceptance, geometric after a rejection
            gain = actual / predicted.clamp_min(torch.finfo(old.dtype).tiny)
            grown = (length / torch.clamp(1 - (2 * gain - 1) ** 3, min=1 / 3)).clamp_max(max_reach)
            reach[active] = torch.where(ok, grown, length / growth[active])
            growth[active] = torch.where(ok, torch.full_like(length, 2.0), growth[active] * 2)
        scale = old.abs().clamp_min(torch.finfo(old.dtype).tiny)
        change = torch.where(ok, actual, torch.zeros_like(actual)) / scale
        last_change[active] = torch.where(ok, change, last_change[active])
        model_small = torch.isfinite(predicted) & (predicted <= tol * scale)
        done = full & model_small & (change <= tol)
        accepted = active[ok]
        params[accepted] = trial[ok]
        value[accepted] = new_value[ok]
        converged[active[done]] = True
        stalled = ~done & (reach[active] < MIN_REACH)
        for b in active[stalled].tolist():
            cause = (
                "the decoder returned non-finite values on the trial curve"
                if nonfinite_trial[b]
                else "no step decreased the energy"
            )
            reasons[b] = f"Gauss-Newton stalled: {cause}, down to {MIN_REACH:g} of the Gauss-Newton step ({_last(last_change[b])})"
        refresh = ok & ~done & ~stalled
        if refresh.any():
            system.put(active[refresh], node_system(manifold, points(params[active[refresh]], active[refresh])))
        active = active[~done & ~stalled]
    for b in active.tolist():
        reasons[b] = f"energy still changing after {iterations} iterations ({_last(last_change[b])}; tol={tol:g})"
    return DescentResult(params, value, converged, reasons, taken)


def _last(change: torch.Tensor) -> str:
    """The last accepted step's relative decrease, for a reason."""
    return "no step accepted" if torch.isinf(change) else f"last relative decrease {change.item():.1e}"


#: Largest multiple of the Gauss-Newton step that the line extrapolation tries.
MAX_STRETCH = 4.0


def _extrapolate(manifold, points, index, params, delta, trial, old, new_value, slope, allowed):
    """Where a step fell by more than the model predicted (pairs ``allowed``), also try the minimiser
    of the parabola through S(0), its slope -2 slope and S(delta) (at most MAX_STRETCH delta); keep
    the lower S.

    The Gauss-Newton matrix omits the residual-times-second-derivative term of the Hessian; where the
    metric varies along the curve it can overestimate the curvature, and plain steps crawl (measured on
    mnist-2d: steps that decreased S by twice the predicted amount, again and again).
    """
    curvature = new_value - old + 2 * slope  # exact for a parabola along delta
    stretch = slope / curvature.clamp_min(torch.finfo(old.dtype).tiny)
    longer = allowed & torch.isfinite(new_value) & (new_value < old) & (curvature > 0) & (stretch > 1.5)
    if not longer.any():
        return trial, new_value
    stretch = stretch[longer].clamp_max(MAX_STRETCH).unsqueeze(-1)
    far = params[longer] + stretch * delta[longer]
    far_value = node_value(manifold, points(far, index[longer]))
    better = torch.isfinite(far_value) & (far_value < new_value[longer])
    trial, new_value = trial.clone(), new_value.clone()
    where = longer.nonzero().flatten()[better]
    trial[where], new_value[where] = far[better], far_value[better]
    return trial, new_value


def mean_diagonal(system: NodeSystem) -> torch.Tensor:
    """(b,) the mean diagonal entry of each pair's diagonal blocks: the scale of its node matrix."""
    return system.diag.diagonal(dim1=-2, dim2=-1).mean(dim=(1, 2))


def with_ridge(system: NodeSystem, ridge: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The diagonal blocks plus ridge * I, per pair: (b, m, d, d); ridge (b,) defaults to RIDGE * the
    :func:`mean_diagonal`."""
    if ridge is None:
        ridge = RIDGE * mean_diagonal(system)
    eye = torch.eye(system.diag.shape[-1], dtype=system.diag.dtype, device=system.diag.device)
    return system.diag + ridge.view(-1, 1, 1, 1) * eye


def node_model(system: NodeSystem, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope b.delta and curvature delta^T A delta (undamped A) of a node step delta (b, m, d): (b,), (b,)."""
    A_delta = block_tridiagonal_matmul(system.diag, system.upper, delta.unsqueeze(-1)).squeeze(-1)
    return (system.rhs * delta).sum(dim=(1, 2)), (delta * A_delta).sum(dim=(1, 2))
