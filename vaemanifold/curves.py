"""Curve families with fixed endpoints, batched over B pairs (stochman ``BasicCurve`` objects).

* :class:`NeuralCurve` -- g(t) = (1-t) z0 + t z1 + t(1-t) psi(t), psi a smooth MLP.
* :class:`SplineCurve` -- stochman's ``CubicSpline`` with a truly C2 basis,
  evaluation vectorised over pairs, and an exact least-squares ``fit``.
* :class:`HermiteCurve` -- piece-wise cubic Hermite curves on per-pair knots
  (the exact form of a ``scipy.integrate.solve_bvp`` solution);
  :func:`interpolating_spline` makes one the C2 cubic spline through equally
  spaced points (the answer of the Gauss-Newton solver).

Shapes follow stochman: ``forward(t)`` takes t of shape (N,) or (B, N) and
returns (B, N, d), squeezed to (N, d) for a single curve and 1-D t;
``deriv(t)`` always returns (B, N, d).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from stochman.curves import BasicCurve, CubicSpline
from torch import nn
from torch.func import functional_call, jvp, vmap

#: Smooth activations allowed in psi. The energy's gradient needs second
#: derivatives of the curve in t, which piece-wise linear activations lack.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
}
_PIECEWISE_LINEAR = {"relu", "leaky_relu", "prelu", "relu6", "hardtanh", "identity", "linear"}


def _check_activation(activation: str) -> None:
    if activation in _PIECEWISE_LINEAR:
        raise ValueError(
            f"activation {activation!r} is piece-wise linear: its second derivative is zero almost "
            f"everywhere, which the curve-energy gradient needs; use one of {sorted(ACTIVATIONS)}"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}")


def _check_features(features: int) -> int:
    """``features`` (Fourier frequencies of a NeuralCurve's input) as an int; a clear error unless a whole number >= 0."""
    if int(features) != features or features < 0:
        raise ValueError(f"features must be a whole number >= 0, got {features}")
    return int(features)


def line_points(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, N, d) points of the straight lines from z0 to z1 (B, d) at times t (N,) or (B, N).

    torch.lerp: exact at both ends and constant for equal ends ((1-t) a + t a is not a at t = k/96).
    """
    return torch.lerp(z0.unsqueeze(1), z1.unsqueeze(1), t.unsqueeze(-1))


def _as_batched_times(t: torch.Tensor, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """t (N,) or (B, N) -> (B, N) in the curve's dtype/device, and whether t was 1-D."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 1:
        return t.unsqueeze(0).repeat(batch, 1), True
    if t.dim() == 2 and t.shape[0] == batch:
        return t.contiguous(), False
    raise ValueError(f"t must be (N,) or (B={batch}, N), got shape {tuple(t.shape)}")


class NeuralCurve(BasicCurve):
    """g(t) = (1-t) z0 + t z1 + t(1-t) psi(t), psi a small smooth MLP per pair.

    psi(t) = ||z1 - z0|| * MLP(x(t)): the input x(t) is 2t - 1 (centred on
    [-1, 1]), followed by ``features`` Fourier pairs sin(k pi t), cos(k pi t),
    k = 1..F, and the output is scaled by the chord length so that optimiser
    settings do not depend on the scale of the latent space. The Fourier
    inputs let a small network bend sharply where a geodesic turns: a tanh MLP
    of t alone is smooth on the scale of the whole curve. Each of the B pairs has its own weights;
    all of them live in one (B, P) parameter ``params`` and are evaluated with
    batched matrix products. The last layer starts at zero, so the curve
    starts as the straight line; the other layers start from one random draw
    shared by every pair, so a pair's start (and a solver's result for it)
    does not depend on the batch it comes in.

    Args:
        begin, end: (d,) or (B, d) endpoints.
        hidden: hidden layer widths of psi.
        activation: 'tanh' (default), 'softplus' or 'sigmoid'.
        features: F >= 0, Fourier frequencies of the input (default 0: 2t - 1 alone).
        requires_grad: make ``params`` trainable.
        params: optional (B, P) initial parameters (as returned by ``params``).
    """

    def __init__(
        self,
        begin: torch.Tensor,
        end: torch.Tensor,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        requires_grad: bool = True,
        params: Optional[torch.Tensor] = None,
        features: int = 0,
    ) -> None:
        _check_activation(activation)
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive widths, got {hidden}")
        super().__init__(
            begin, end, 2, requires_grad, hidden=hidden, activation=activation, params=params,
            features=_check_features(features),
        )

    def _init_params(
        self, hidden: tuple[int, ...], activation: str, params: Optional[torch.Tensor], features: int
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.features = features
        batch, dim = self.begin.shape
        sizes = (1 + 2 * features, *hidden, dim)
        self._shapes = list(zip(sizes[:-1], sizes[1:]))
        n_params = sum((m + 1) * n for m, n in self._shapes)
        if params is None:  # one draw shared by every pair: a pair's start does not depend on its batch
            blocks = []
            for layer, (m, n) in enumerate(self._shapes):
                bound = 0.0 if layer == len(self._shapes) - 1 else 1.0 / math.sqrt(m)
                blocks.append(torch.empty(1, (m + 1) * n, dtype=self.begin.dtype).uniform_(-bound, bound))
            params = torch.cat(blocks, dim=1).expand(batch, -1)
        if params.shape != (batch, n_params):
            raise ValueError(f"params must have shape {(batch, n_params)}, got {tuple(params.shape)}")
        self.params = nn.Parameter(params.detach().clone().to(self.begin), requires_grad=self._requires_grad)

    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views into ``params``: per layer W (B, m, n) and b (B, 1, n)."""
        layers, offset = [], 0
        for m, n in self._shapes:
            W = self.params[:, offset : offset + m * n].view(-1, m, n)
            offset += m * n
            b = self.params[:, offset : offset + n].view(-1, 1, n)
            offset += n
            layers.append((W, b))
        return layers

    def psi(self, t: torch.Tensor) -> torch.Tensor:
        """The network term psi: t (B, N) -> (B, N, d)."""
        act = ACTIVATIONS[self.activation]
        x = (2 * t - 1).unsqueeze(-1)
        if self.features:
            angles = math.pi * torch.arange(1, self.features + 1, dtype=t.dtype, device=t.device) * t.unsqueeze(-1)
            x = torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)
        layers = self._layers()
        for W, b in layers[:-1]:
            x = act(torch.baddbmm(b, x, W))
        W, b = layers[-1]
        scale = (self.end - self.begin).norm(dim=-1).view(-1, 1, 1)
        return scale * torch.baddbmm(b, x, W)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        tt, one_d = _as_batched_times(t, len(self), self.begin)
        s = tt.unsqueeze(-1)
        g = line_points(self.begin, self.end, tt) + s * (1 - s) * self.psi(tt)
        return g.squeeze(0) if one_d and len(self) == 1 else g

    def deriv(self, t: torch.Tensor) -> torch.Tensor:
        """Exact g'(t) = z1 - z0 + (1 - 2t) psi + t(1-t) psi'(t), psi' by a forward-mode JVP.

        Returns (B, N, d) for t of shape (N,) or (B, N).
        """
        tt, _ = _as_batched_times(t, len(self), self.begin)
        value, slope = jvp(self.psi, (tt,), (torch.ones_like(tt),))
        s = tt.unsqueeze(-1)
        return (self.end - self.begin).unsqueeze(1) + (1 - 2 * s) * value + s * (1 - s) * slope

    def __getitem__(self, indices) -> "NeuralCurve":
        params = self.params[indices]
        begin, end = self.begin[indices], self.end[indices]
        if params.dim() == 1:
            params, begin, end = params.unsqueeze(0), begin.unsqueeze(0), end.unsqueeze(0)
        return NeuralCurve(begin, end, self.hidden, self.activation, self._requires_grad, params.detach(), self.features)

    def fit(self, t: torch.Tensor, x: torch.Tensor, iterations: int = 100, tol: float = 1e-10) -> torch.Tensor:
        """Least-squares fit of the weights to points x at times t, by Levenberg-Marquardt per pair.

        stochman's ``BasicCurve.fit`` runs one L-BFGS for the whole batch with
        unit steps and no line search; on a batch of three geodesics it
        diverged to NaN. Here each pair has its own damping and step
        acceptance, and stops when an accepted step lowers its squared
        residual by less than ``tol`` (relative) or no step lowers it; the
        pairs do not interact. Each step needs the P forward-mode tangents of
        the curve points and one P x P solve per pair.

        Args:
            t: (N,) or (B, N) times.
            x: (N, d) or (B, N, d) target points.
            iterations: maximum steps.
            tol: relative decrease of the squared residual that ends a pair's fit.

        Returns:
            the mean squared residual after the fit.
        """
        if iterations < 1 or not tol > 0:
            raise ValueError(f"iterations must be >= 1 and tol > 0, got {iterations}, {tol}")
        tt, _ = _as_batched_times(t, len(self), self.begin)
        x = x.to(self.begin).reshape(len(self), tt.shape[1], self.begin.shape[-1])
        # pairs are independent: chunk them so the (P, pairs, N d) tangents stay near 2^24 numbers
        chunk = max(1, 2**24 // max(1, self.params.shape[1] * x.shape[1] * x.shape[2]))
        with torch.no_grad():
            for start in range(0, len(self), chunk):
                pairs = slice(start, start + chunk)
                self.params[pairs] = self._levenberg_marquardt(tt[pairs], x[pairs], pairs, iterations, tol)
            return ((self(tt) - x) ** 2).mean()

    def _levenberg_marquardt(self, t: torch.Tensor, x: torch.Tensor, pairs: slice, iterations: int, tol: float):
        """fit on the pairs ``pairs``: t (b, N), x (b, N, d) -> their fitted params (b, P)."""
        state = {"begin": self.begin[pairs], "end": self.end[pairs]}

        def residuals(params: torch.Tensor) -> torch.Tensor:  # (b, P) -> (b, N d)
            return (functional_call(self, {**state, "params": params}, (t,)) - x).flatten(1)

        params = self.params[pairs].detach().clone()
        basis = torch.eye(params.shape[1], dtype=params.dtype, device=params.device)
        r = residuals(params)
        cost = (r**2).sum(dim=1)
        damping = torch.full_like(cost, 1e-3)
        active = torch.isfinite(cost) & (cost > 0)
        for _ in range(iterations):
            if not active.any():
                break
            J = vmap(lambda v: jvp(residuals, (params,), (v.expand_as(params),))[1])(basis).permute(1, 2, 0)
            H = J.transpose(1, 2) @ J  # (b, P, P)
            scale = damping * H.diagonal(dim1=-2, dim2=-1).mean(dim=-1)
            step = torch.linalg.solve_ex(H + scale.view(-1, 1, 1) * basis, -(J.transpose(1, 2) @ r.unsqueeze(-1)))[0]
            trial = params + step.squeeze(-1)
            r_trial = residuals(trial)
            trial_cost = (r_trial**2).sum(dim=1)
            better = active & torch.isfinite(trial_cost) & (trial_cost < cost)
            small = (cost - trial_cost) <= tol * cost
            params[better], r[better] = trial[better], r_trial[better]
            cost = torch.where(better, trial_cost, cost)
            damping = torch.where(better, damping / 3, damping * 4)
            active &= ~(better & small) & (damping < 1e8) & (cost > 0)
        return params

    def constant_speed(self, metric=None, t: Optional[torch.Tensor] = None):
        """Refit the curve so that it has (approximately) constant speed.

        Speed is Euclidean, or measured by ``metric`` (a stochman Manifold).
        Returns stochman's triple: the (B, N) arc-length fractions of the
        sample times, the (B, N, d) sampled points, and the (B,) lengths.
        """
        with torch.no_grad():
            if t is None:
                t = torch.linspace(0, 1, 100, dtype=self.begin.dtype, device=self.begin.device)
            points = self(t).reshape(len(self), -1, self.begin.shape[1])
            delta = points.diff(dim=1)
            if metric is None:
                local = delta.norm(dim=-1)
            else:
                base, flat = points[:, :-1].reshape(-1, delta.shape[-1]), delta.reshape(-1, delta.shape[-1])
                local = metric.inner(base, flat, flat).clamp_min(0).sqrt().view(len(self), -1)
            arc = torch.cat([local.new_zeros(len(self), 1), local.cumsum(dim=1)], dim=1)
            fractions = arc / arc[:, -1:].clamp_min(torch.finfo(arc.dtype).tiny)
        self.fit(fractions, points)
        return fractions, points, arc[:, -1]


def c2_spline_basis(num_nodes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Null-space basis of piece-wise cubics on ``num_nodes`` equispaced knots in [0, 1]
    that vanish at both ends and are C2 at the interior knots.

    stochman 0.3.0 builds the same constraints with a wrong second-derivative
    row (its issue #29), which leaves its splines only C1.

    Returns:
        (4 * (num_nodes - 1), num_nodes) matrix whose columns span the
        admissible polynomial coefficients.
    """
    if num_nodes < 3:
        raise ValueError(f"a spline needs num_nodes >= 3, got {num_nodes}")
    edges = num_nodes - 1
    knots = torch.linspace(0, 1, num_nodes, dtype=torch.float64)[1:-1]
    rows = [torch.zeros(4 * edges, dtype=torch.float64) for _ in range(2)]
    rows[0][0] = 1.0  # value 0 at t = 0
    rows[1][-4:] = 1.0  # value 0 at t = 1
    for i, k in enumerate(knots):
        for fill in (
            [1.0, k, k**2, k**3],  # continuity
            [0.0, 1.0, 2 * k, 3 * k**2],  # first derivative
            [0.0, 0.0, 2.0, 6 * k],  # second derivative
        ):
            row = torch.zeros(4 * edges, dtype=torch.float64)
            row[4 * i : 4 * i + 4] = torch.tensor(fill)
            row[4 * i + 4 : 4 * i + 8] = -torch.tensor(fill)
            rows.append(row)
    constraints = torch.stack(rows)
    _, S, Vh = torch.linalg.svd(constraints)
    rank = int((S > 1e-10 * S[0]).sum())
    return Vh[rank:].T.to(dtype)


class SplineCurve(CubicSpline):
    """stochman's ``CubicSpline``, mended: C2 at the knots, no Python loop over
    pairs when evaluating, ``fit`` by exact linear least squares, and evaluated
    in float64 whatever its dtype: stochman's coefficients are of powers of the
    global t, whose sums cancel, so in float32 a curve with large parameters
    would miss its ends (its basis is kept in float64 for the same reason).

    Args:
        begin, end: (d,) or (B, d) endpoints.
        num_nodes: knots including both ends (>= 3).
        requires_grad, basis, params: as in stochman's ``CubicSpline``.
    """

    def __init__(
        self,
        begin: torch.Tensor,
        end: torch.Tensor,
        num_nodes: int = 8,
        requires_grad: bool = True,
        basis: Optional[torch.Tensor] = None,
        params: Optional[torch.Tensor] = None,
    ) -> None:
        if basis is None:
            basis = c2_spline_basis(num_nodes, torch.float64).to(begin.device)
        super().__init__(begin, end, num_nodes, requires_grad, basis=basis, params=params)

    def _design(self, t: torch.Tensor) -> torch.Tensor:
        """Per-t polynomial rows: (B, N) -> (B, N, 4 * num_edges)."""
        num_edges = self.basis.shape[0] // 4
        t = t.to(self.basis.dtype)
        idx = (t * num_edges).floor().clamp(0, num_edges - 1).long()
        powers = t.unsqueeze(-1) ** torch.arange(4, dtype=t.dtype, device=t.device)
        rows = t.new_zeros(*t.shape, num_edges, 4)
        rows.scatter_(-2, idx[..., None, None].expand(*idx.shape, 1, 4), powers.unsqueeze(-2))
        return rows.flatten(-2)

    def _get_coeffs(self) -> torch.Tensor:
        """(B, num_edges, 4, D) polynomial coefficients, in the basis's dtype (float64)."""
        coeffs = torch.einsum("ck,bkd->bcd", self.basis, self.params.to(self.basis.dtype))
        return coeffs.view(coeffs.shape[0], -1, 4, coeffs.shape[-1])

    def _eval_polynomials(self, t: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
        # coeffs: (B, num_edges, degree, D); t: (B, N). Gather replaces stochman's loop over B.
        B, num_edges, degree, D = coeffs.shape
        t = t.to(coeffs.dtype)
        idx = (t * num_edges).floor().clamp(0, num_edges - 1).long()
        picked = torch.gather(coeffs, 1, idx[..., None, None].expand(-1, -1, degree, D))  # (B, N, degree, D)
        powers = t.unsqueeze(-1) ** torch.arange(degree, dtype=t.dtype, device=t.device)
        return (powers.unsqueeze(-1) * picked).sum(dim=2).to(self.params.dtype)

    def __getitem__(self, indices) -> "SplineCurve":
        params, begin, end = self.params[indices], self.begin[indices], self.end[indices]
        if params.dim() == 2:
            params, begin, end = params.unsqueeze(0), begin.unsqueeze(0), end.unsqueeze(0)
        return SplineCurve(begin, end, self._num_nodes, self._requires_grad, self.basis, params.detach())

    def fit(self, t: torch.Tensor, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Least-squares fit of the interior to points x at times t (the ends stay fixed).

        Args:
            t: (N,) or (B, N) times.
            x: (N, d) or (B, N, d) target points.

        Returns:
            the mean squared residual after the fit. The problem is linear in
            the parameters, so it is solved exactly (stochman iterates L-BFGS).
        """
        tt, _ = _as_batched_times(t, len(self), self.begin)
        x = x.to(self.begin).reshape(len(self), tt.shape[1], self.begin.shape[-1])
        line = (1 - tt.unsqueeze(-1)) * self.begin.unsqueeze(1) + tt.unsqueeze(-1) * self.end.unsqueeze(1)
        A = self._design(tt) @ self.basis  # (B, N, P), float64
        with torch.no_grad():
            target = (x - line).to(A.dtype)
            solution = torch.linalg.lstsq(A, target).solution  # (B, P, d)
            self.params.copy_(solution)
            return ((A @ solution - target) ** 2).mean().to(self.params.dtype)


def _gather_knots(a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """a (B, K, d) at knot indices idx (B, N) -> (B, N, d)."""
    return a.gather(1, idx.unsqueeze(-1).expand(-1, -1, a.shape[-1]))


class HermiteCurve(BasicCurve):
    """Piece-wise cubic Hermite curves from values and slopes at knots, one knot set per pair.

    This is the form in which ``scipy.integrate.solve_bvp`` returns its solution
    (a C1 cubic spline through the mesh values with the mesh derivatives), so a
    BVP solution is represented exactly, on its own non-uniform mesh.

    Args:
        knots: (B, K) increasing times per pair, from 0 to 1. Pairs with fewer
            knots are padded at the end by repeating their last knot (value, slope).
        values: (B, K, d) curve points at the knots.
        slopes: (B, K, d) derivatives in t at the knots.
        counts: optional (B,) number of real knots per pair (default K for all).
    """

    def __init__(
        self,
        knots: torch.Tensor,
        values: torch.Tensor,
        slopes: torch.Tensor,
        counts: Optional[torch.Tensor] = None,
    ) -> None:
        if values.dim() != 3 or slopes.shape != values.shape or knots.shape != values.shape[:2]:
            raise ValueError(
                f"need knots (B, K), values and slopes (B, K, d); got {tuple(knots.shape)}, "
                f"{tuple(values.shape)}, {tuple(slopes.shape)}"
            )
        if values.shape[1] < 2:
            raise ValueError(f"a Hermite curve needs at least 2 knots, got {values.shape[1]}")
        if counts is None:
            counts = torch.full((values.shape[0],), values.shape[1], dtype=torch.long)
        counts = counts.to(device=values.device, dtype=torch.long)
        if bool((counts < 2).any()) or bool((counts > values.shape[1]).any()):
            raise ValueError(f"counts must lie in [2, {values.shape[1]}]")
        last = (counts - 1).view(-1, 1, 1).expand(-1, 1, values.shape[2])
        end = values.gather(1, last).squeeze(1)
        super().__init__(values[:, 0], end, values.shape[1], False, knots, values, slopes, counts)

    def _init_params(self, knots, values, slopes, counts) -> None:
        self.register_buffer("knots", knots.detach().to(values).contiguous())
        self.register_buffer("values", values.detach().clone())
        self.register_buffer("slopes", slopes.detach().to(values).clone())
        self.register_buffer("counts", counts)

    @property
    def device(self) -> torch.device:
        return self.values.device

    def _locate(self, t: torch.Tensor):
        """Interval data for times t (B, N): left/right values and slopes, width h, local s in [0, 1]."""
        idx = torch.searchsorted(self.knots, t.contiguous(), right=True) - 1
        idx = torch.minimum(idx.clamp_min(0), (self.counts - 2).unsqueeze(1))
        t0, t1 = self.knots.gather(1, idx), self.knots.gather(1, idx + 1)
        h = (t1 - t0).unsqueeze(-1)
        s = ((t - t0).unsqueeze(-1)) / h
        p0, p1 = _gather_knots(self.values, idx), _gather_knots(self.values, idx + 1)
        return p0, p1, _gather_knots(self.slopes, idx), _gather_knots(self.slopes, idx + 1), h, s

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        tt, one_d = _as_batched_times(t, len(self), self.values)
        p0, p1, m0, m1, h, s = self._locate(tt)
        s2, s3 = s * s, s * s * s
        c = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * m0 + (3 * s2 - 2 * s3) * p1 + (s3 - s2) * h * m1
        return c.squeeze(0) if one_d and len(self) == 1 else c

    def deriv(self, t: torch.Tensor) -> torch.Tensor:
        """Exact derivative in t: (B, N, d) for t of shape (N,) or (B, N)."""
        tt, _ = _as_batched_times(t, len(self), self.values)
        p0, p1, m0, m1, h, s = self._locate(tt)
        s2 = s * s
        return (6 * s2 - 6 * s) * (p0 - p1) / h + (3 * s2 - 4 * s + 1) * m0 + (3 * s2 - 2 * s) * m1

    def __getitem__(self, indices) -> "HermiteCurve":
        knots, values, slopes, counts = (a[indices] for a in (self.knots, self.values, self.slopes, self.counts))
        if values.dim() == 2:
            knots, values, slopes, counts = knots[None], values[None], slopes[None], counts.view(1)
        return HermiteCurve(knots, values, slopes, counts)


@lru_cache(maxsize=32)
def _spline_slope_matrix(segments: int) -> np.ndarray:
    """(n+1, n+1) matrix taking values at t_i = i/n to the slopes of the C2 cubic spline
    through them (not-a-knot ends), from scipy's ``CubicSpline`` applied to the identity."""
    from scipy.interpolate import CubicSpline

    t = np.linspace(0.0, 1.0, segments + 1)
    return CubicSpline(t, np.eye(segments + 1), bc_type="not-a-knot")(t, 1)


def interpolating_spline(values: torch.Tensor) -> HermiteCurve:
    """The C2 cubic spline through B sequences of equally spaced points.

    Args:
        values: (B, n+1, d) points at t_i = i / n, n >= 1, ends included.

    Returns:
        a :class:`HermiteCurve` on the knots t_i with the spline's slopes
        (scipy's not-a-knot end conditions: no end acceleration is imposed).
    """
    if values.dim() != 3 or values.shape[1] < 2:
        raise ValueError(f"values must be (B, n+1, d) with n >= 1, got {tuple(values.shape)}")
    B, nodes, _ = values.shape
    S = torch.as_tensor(_spline_slope_matrix(nodes - 1), dtype=values.dtype, device=values.device)
    knots = torch.linspace(0, 1, nodes, dtype=values.dtype, device=values.device).expand(B, nodes)
    return HermiteCurve(knots, values, S @ values)
