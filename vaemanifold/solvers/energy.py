"""Geodesics by minimising curve energy over a parametric curve family.

The default optimiser, ``"gauss-newton"``, treats the energy of the curve's
points at fixed equally spaced times as the least-squares problem of
:mod:`vaemanifold.solvers.least_squares` and pulls its block-tridiagonal
Gauss-Newton matrix back through the exact Jacobian of those points with
respect to the curve's parameters (forward mode, one tangent per parameter):
H = G^T A G and g = G^T b, one P x P solve per pair and step. The points
grow coarse to fine (``levels``); the curve itself is the answer, measured
densely by :func:`vaemanifold.connecting_geodesic`. Every decision (step
length, convergence, stopping) is per pair.

The first-order optimisers ('adam', 'lbfgs') minimise a sampled energy
E = int ||d/dt f(g(t))||^2 dt, f the decoder embedding. Two estimators:

* ``"jvp"`` (default): (1/n) sum_i ||J_f(g(t_i)) g'(t_i)||^2 with the curve's
  exact derivative g'(t) and one forward-mode JVP of f per sample point;
* ``"fd"``: sum_i ||f(g(t_{i+1})) - f(g(t_i))||^2 / (t_{i+1} - t_i), finite
  differences in data space on sorted t including both ends (stochman's way).

Sample times, redrawn every step unless ``sampling="grid"``:

* ``"grid"``: fixed midpoints (jvp) or a fixed uniform grid (fd);
* ``"stratified"``: one uniform draw in each of n equal bins (default), so a
  curve cannot exploit fixed grid points to step over a high-variance region;
* ``"random"``: n independent uniform draws.

With them, convergence is judged per pair every ``check_every`` steps on a
fixed ``check_points``-point midpoint grid: a pair has converged when its
energy changed by less than ``tol`` (relative) since the previous check. Adam
at a fixed learning rate stalls at a noise floor above any small ``tol``, so
when a check shows no progress for the batch, Adam's learning rate is halved
(down to ``lr * min_lr_factor``; a plateau then ends the run unconverged).
Adam's steps are per parameter, but that halving and the end of the run are
decided for the batch, so a pair's Adam result depends (within ``tol``) on its
batch-mates; L-BFGS runs one optimiser per pair (one line search per pair).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional, Sequence

import torch
from stochman.curves import BasicCurve
from torch.func import functional_call, jvp, vmap

from .._checks import check_choice
from ..manifold import DecoderManifold
from .base import GeodesicSolver, SolverOutput
from .least_squares import NodeSystem, block_tridiagonal_matmul, gauss_newton_descent, mean_diagonal, with_ridge

ENERGIES = ("jvp", "fd")
SCALINGS = ("identity", "diagonal", "points")
SAMPLINGS = ("stratified", "random", "grid")
OPTIMIZERS = ("gauss-newton", "adam", "lbfgs")
#: Largest reach of a curve's steps: its damping never drops below ``damping`` / MAX_REACH.
MAX_REACH = 1e4
#: ``scaling="diagonal"``: each parameter's damping is its diagonal entry of H plus this fraction of the
#: mean diagonal, so that a parameter H barely sees is still damped.
DIAGONAL_FLOOR = 1e-3
#: ``scaling="points"``: G^T G plus this fraction of its mean diagonal, so that parameter directions that
#: move no sample point (a network with more weights than sampled coordinates) stay damped.
POINTS_FLOOR = 1e-6


def sample_times(n: int, batch: int, sampling: str, estimator: str, generator: torch.Generator, like: torch.Tensor):
    """(batch, n) sample times in [0, 1] for an energy estimator (see the module docstring)."""
    if estimator == "fd":
        inner = sample_times(n - 2, batch, sampling, "jvp", generator, like) if n > 2 else like.new_zeros(batch, 0)
        ends = like.new_zeros(batch, 1)
        return torch.cat([ends, inner.sort(dim=1).values, ends + 1], dim=1)
    bins = torch.arange(n, dtype=like.dtype, device=like.device)
    if sampling == "grid":
        return ((bins + 0.5) / n).expand(batch, n)
    u = torch.rand(batch, n, generator=generator, dtype=like.dtype).to(like.device)
    return (bins + u) / n if sampling == "stratified" else u


def curve_energy(manifold: DecoderManifold, curve: BasicCurve, t: torch.Tensor, estimator: str) -> torch.Tensor:
    """Energy estimate per curve, (B,), from sample times t (B, n) (differentiable)."""
    if estimator == "jvp":
        speed = manifold.velocity(curve(t), curve.deriv(t))
        return (speed**2).sum(dim=-1).mean(dim=-1)
    emb = manifold.embed(curve(t).reshape(len(curve), t.shape[1], -1))
    steps = t.diff(dim=1).clamp_min(torch.finfo(t.dtype).eps)
    return ((emb.diff(dim=1) ** 2).sum(dim=-1) / steps).sum(dim=-1)


class EnergySolver(GeodesicSolver):
    """Shared optimisation for curve families; subclasses build the curve.

    Options:
        optimizer: 'gauss-newton' (default; see the module docstring), 'adam'
            or 'lbfgs' (strong-Wolfe line search, ``lbfgs_inner`` function
            evaluations per step, one optimiser per pair).
        iterations: maximum steps (default on the last Gauss-Newton level: the
            class's ``gauss_newton_iterations``; 1000 for Adam, 100 for L-BFGS).
        tol: relative energy change that counts as converged (default per
            Gauss-Newton step: the class's ``gauss_newton_tol``; 1e-4 between
            first-order checks).
        seed: seed of the curve's initial weights (and of the sampling).
        levels: Gauss-Newton: segments between the fixed sample times, per level
            (default: the class's ``gauss_newton_levels``).
        coarse_tol: Gauss-Newton: tol on the earlier levels (default 1e-2; they only warm-start).
        coarse_iterations: Gauss-Newton: iterations on each earlier level (default: the
            class's ``gauss_newton_coarse_iterations``).
        damping: Gauss-Newton: Levenberg damping of the P x P Gauss-Newton matrix at reach 1,
            relative to its diagonal (default: the class's ``gauss_newton_damping``); a
            pair's damping is this / its reach, adapted by Nielsen's rule
            (:func:`~vaemanifold.solvers.least_squares.gauss_newton_descent`). A curve with
            more parameters than sampled coordinates has a singular matrix, and a network's
            response to a weight step is linear only for small steps.
        scaling: Gauss-Newton, last level: what that damping is relative to: 'identity'
            (Levenberg: the mean diagonal of H for every parameter), 'diagonal' (Marquardt:
            each parameter's own diagonal entry, plus :data:`DIAGONAL_FLOOR` of the mean),
            which does not depend on how the parameters are scaled, or 'points': how far
            the step moves the sample points in latent space, ||G delta||^2 (G their
            Jacobian; plus :data:`POINTS_FLOOR` of its mean diagonal) times the mean
            diagonal of the node matrix: the ridge of the ``gauss_newton`` solver pulled
            back through the curve, so it does not depend on how the curve is
            parametrised at all (default: the class's ``gauss_newton_scaling``).
        coarse_scaling: Gauss-Newton: the same on the earlier levels (default: the class's
            ``gauss_newton_coarse_scaling``, or ``scaling`` where that is None).
        lr: first order: learning rate (default 0.01 for Adam, 1.0 for L-BFGS).
        points: first order: sample points per step (default 32).
        sampling: first order: 'stratified' (default), 'random' or 'grid'.
        energy: first order: 'jvp' (default) or 'fd'.
        check_every: first order: steps between convergence checks (default 25 for Adam, 1 for L-BFGS).
        min_lr_factor: Adam: the learning rate is halved on a plateau down to lr * this (default 1e-3).
        check_points: first order: points of the fixed check grid (default 64).
    """

    #: Default ``iterations`` on the last Gauss-Newton level.
    gauss_newton_iterations: int = 30
    #: Default ``tol`` of the Gauss-Newton steps.
    gauss_newton_tol: float = 5e-4
    #: Default ``coarse_iterations``: Gauss-Newton steps on each earlier level.
    gauss_newton_coarse_iterations: int = 10
    #: Default ``levels`` of the Gauss-Newton steps.
    gauss_newton_levels: tuple[int, ...] = (32, 64, 128)
    #: Default ``damping`` of the Gauss-Newton steps.
    gauss_newton_damping: float = 1e-2
    #: Default ``scaling`` of the damping on the last Gauss-Newton level.
    gauss_newton_scaling: str = "identity"
    #: Default ``coarse_scaling`` on the earlier levels (None: as ``scaling``).
    gauss_newton_coarse_scaling: Optional[str] = None

    def __init__(
        self,
        iterations: Optional[int] = None,
        optimizer: str = "gauss-newton",
        tol: Optional[float] = None,
        levels: Optional[Sequence[int]] = None,
        coarse_tol: float = 1e-2,
        coarse_iterations: Optional[int] = None,
        damping: Optional[float] = None,
        scaling: Optional[str] = None,
        coarse_scaling: Optional[str] = None,
        lr: Optional[float] = None,
        points: int = 32,
        sampling: str = "stratified",
        energy: str = "jvp",
        check_every: Optional[int] = None,
        check_points: int = 64,
        min_lr_factor: float = 1e-3,
        lbfgs_inner: int = 20,
        seed: int = 0,
    ) -> None:
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_choice("sampling", sampling, SAMPLINGS)
        check_choice("energy", energy, ENERGIES)
        if iterations is None:
            iterations = {"gauss-newton": self.gauss_newton_iterations, "adam": 1000, "lbfgs": 100}[optimizer]
        if damping is None:
            damping = self.gauss_newton_damping
        if coarse_iterations is None:
            coarse_iterations = self.gauss_newton_coarse_iterations
        if scaling is None:
            scaling = self.gauss_newton_scaling
        if coarse_scaling is None:
            coarse_scaling = self.gauss_newton_coarse_scaling or scaling
        check_choice("scaling", scaling, SCALINGS)
        check_choice("coarse_scaling", coarse_scaling, SCALINGS)
        if tol is None:
            tol = self.gauss_newton_tol if optimizer == "gauss-newton" else 1e-4
        if check_every is None:
            check_every = 25 if optimizer == "adam" else 1
        levels = tuple(int(n) for n in (self.gauss_newton_levels if levels is None else levels))
        if not levels or min(levels) < 2 or list(levels) != sorted(set(levels)):
            raise ValueError(f"levels must be increasing segment counts >= 2, got {levels}")
        if iterations < 1 or coarse_iterations < 1 or points < 2 or check_every < 1 or check_points < 2:
            raise ValueError(
                "iterations, coarse_iterations, check_every must be >= 1 and points, check_points >= 2"
            )
        if not (tol > 0 and coarse_tol > 0 and damping > 0):
            raise ValueError(f"tol, coarse_tol and damping must be positive, got {tol}, {coarse_tol}, {damping}")
        self.optimizer = optimizer
        self.iterations = int(iterations)
        self.tol = float(tol)
        self.levels = levels
        self.coarse_tol = float(coarse_tol)
        self.coarse_iterations = int(coarse_iterations)
        self.damping = float(damping)
        self.scaling = scaling
        self.coarse_scaling = coarse_scaling
        self.lr = float(lr) if lr is not None else (0.01 if optimizer == "adam" else 1.0)
        self.points = int(points)
        self.sampling = sampling
        self.energy = energy
        self.check_every = int(check_every)
        self.check_points = int(check_points)
        self.min_lr_factor = float(min_lr_factor)
        self.lbfgs_inner = int(lbfgs_inner)
        self.seed = int(seed)

    @abstractmethod
    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> BasicCurve:
        """A trainable curve family starting at the straight line: (B, d), (B, d) -> B curves.

        Its parameters are one tensor ``params`` with the pairs along the first dimension.
        """

    def solve(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        with torch.random.fork_rng(devices=[]):  # a seeded start; the caller's random state is left as it was
            torch.manual_seed(self.seed)
            curve = self.make_curve(z0, z1).to(z0.device)
        if init is not None:
            fit_t = torch.linspace(0, 1, 4 * self.check_points, dtype=z0.dtype, device=z0.device)
            with torch.no_grad():
                target = init(fit_t).reshape(len(z0), fit_t.numel(), -1)
            curve.fit(fit_t, target)
        with manifold.frozen():
            if self.optimizer == "gauss-newton":
                converged, reasons, steps = self._gauss_newton(manifold, curve, z0, z1)
            elif self.optimizer == "lbfgs":  # one optimiser per pair: a line search never spans pairs
                outcomes = []
                for b in range(len(z0)):
                    single = curve[b : b + 1].requires_grad_(True)
                    outcomes.append(self._first_order(manifold, single))
                    with torch.no_grad():
                        curve.params[b] = single.params[0]
                converged = torch.cat([o[0] for o in outcomes])
                reasons = [r for o in outcomes for r in o[1]]
                steps = max(o[2] for o in outcomes)
            else:
                converged, reasons, steps = self._first_order(manifold, curve)
        return SolverOutput(curve.requires_grad_(False), converged.cpu(), steps, reasons)

    # ------------------------------------------------------------ Gauss-Newton
    def _gauss_newton(
        self, manifold: DecoderManifold, curve: BasicCurve, z0: torch.Tensor, z1: torch.Tensor
    ) -> tuple[torch.Tensor, list[Optional[str]], int]:
        """Gauss-Newton on the curve's parameters, level by level; writes the result into ``curve.params``."""
        shape = curve.params.shape
        params = curve.params.detach().reshape(len(z0), -1)
        buffers = dict(curve.named_buffers())
        steps = 0

        def sample(flat: torch.Tensor, index: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            state = {**buffers, "begin": z0[index], "end": z1[index], "params": flat.view(len(index), *shape[1:])}
            return functional_call(curve, state, (t,)).reshape(len(index), len(t), -1)

        with torch.no_grad():
            for level, segments in enumerate(self.levels):
                last = level == len(self.levels) - 1
                scaling = self.scaling if last else self.coarse_scaling
                t = torch.linspace(0, 1, segments + 1, dtype=z0.dtype, device=z0.device)

                def points(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
                    return sample(flat, index, t)

                def step(
                    flat: torch.Tensor, index: torch.Tensor, system: NodeSystem, reach: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                    basis = torch.eye(flat.shape[1], dtype=flat.dtype, device=flat.device)
                    tangents = vmap(lambda v: jvp(lambda p: points(p, index), (flat,), (v.expand_as(flat),))[1])
                    G = tangents(basis).permute(1, 2, 3, 0)[:, 1:-1]  # (b, m, d, P): interior points only
                    if scaling == "points":
                        return tuple(x.to(flat.dtype) for x in self._points_step(G, system, reach))
                    H = torch.einsum("bmdp,bmdq->bpq", G, block_tridiagonal_matmul(system.diag, system.upper, G))
                    g = torch.einsum("bmdp,bmd->bp", G, system.rhs)
                    delta = torch.linalg.solve_ex(H + self._damping(H, reach, scaling), g.unsqueeze(-1))[0].squeeze(-1)
                    return delta, (g * delta).sum(dim=-1), (delta * (H @ delta.unsqueeze(-1)).squeeze(-1)).sum(dim=-1)

                result = gauss_newton_descent(
                    manifold,
                    params,
                    points,
                    step,
                    self.tol if last else self.coarse_tol,
                    self.iterations if last else self.coarse_iterations,
                    max_reach=MAX_REACH,
                    rule="levenberg",
                )
                params = result.params
                steps += result.iterations
            curve.params.copy_(params.view(shape))
        return result.converged, result.reasons, steps

    def _damping(self, H: torch.Tensor, reach: torch.Tensor, scaling: str) -> torch.Tensor:
        """(b, P, P) damping matrices of the Gauss-Newton matrices H (b, P, P) at the pairs' reach (b,)
        under ``scaling`` 'identity' or 'diagonal'."""
        diagonal = H.diagonal(dim1=-2, dim2=-1)
        mean = diagonal.mean(dim=-1, keepdim=True)
        scale = mean.expand_as(diagonal) if scaling == "identity" else diagonal + DIAGONAL_FLOOR * mean
        return torch.diag_embed((self.damping / reach).unsqueeze(-1) * scale)

    def _points_step(
        self, G: torch.Tensor, system: NodeSystem, reach: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step under ``scaling='points'`` from the Jacobian G (b, m, d, P) of the interior sample
        points: (b, P) step, (b,) slope g.delta and (b,) curvature delta^T H delta, in float64.

        The damping mu ||G delta||^2, mu the node solver's ridge (``damping`` / reach times the mean
        diagonal of the node matrix A), joins A's diagonal blocks, so that H + mu G^T G = G^T (A + mu) G
        is one product. It is summed in float64: its terms span orders of magnitude along a curve,
        and float32 rounding would swamp the directions this damping leaves free.
        """
        G = G.double()
        system = NodeSystem(*(x.double() for x in (system.value, system.diag, system.upper, system.rhs)))
        mu = (self.damping / reach.double()) * mean_diagonal(system)  # (b,)
        damped = torch.einsum("bmdp,bmdq->bpq", G, block_tridiagonal_matmul(with_ridge(system, mu), system.upper, G))
        floor = POINTS_FLOOR * mu * (G**2).sum(dim=(1, 2)).mean(dim=-1)  # of the mean diagonal of mu G^T G
        damped = damped + torch.diag_embed(floor.unsqueeze(-1).expand(-1, damped.shape[-1]))
        g = torch.einsum("bmdp,bmd->bp", G, system.rhs)
        delta = torch.linalg.solve_ex(damped, g.unsqueeze(-1))[0].squeeze(-1)
        moved = torch.einsum("bmdp,bp->bmd", G, delta)
        curvature = (moved * block_tridiagonal_matmul(system.diag, system.upper, moved.unsqueeze(-1)).squeeze(-1)).sum(dim=(1, 2))
        return delta, (g * delta).sum(dim=-1), curvature

    # ------------------------------------------------------------ first order
    def _first_order(self, manifold: DecoderManifold, curve: BasicCurve) -> tuple[torch.Tensor, list[Optional[str]], int]:
        """Adam or L-BFGS on the sampled energy (see the module docstring); trains ``curve`` in place."""
        params = [p for p in curve.parameters() if p.requires_grad]
        if self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.lr)
        else:
            opt = torch.optim.LBFGS(params, lr=self.lr, max_iter=self.lbfgs_inner, line_search_fn="strong_wolfe")
        like = curve.begin
        generator = torch.Generator().manual_seed(self.seed)
        check_t = sample_times(self.check_points, len(curve), "grid", "jvp", generator, like)

        nonfinite = torch.zeros(len(curve), dtype=torch.bool, device=like.device)  # per pair, at any evaluation

        def watched(energy: torch.Tensor) -> torch.Tensor:
            nonlocal nonfinite
            nonfinite = nonfinite | ~torch.isfinite(energy.detach())
            return energy

        def check() -> torch.Tensor:
            with torch.no_grad():
                return watched(curve_energy(manifold, curve, check_t, "jvp"))

        previous = check()
        change = torch.full_like(previous, float("inf"))
        steps = 0
        for steps in range(1, self.iterations + 1):
            t = sample_times(self.points, len(curve), self.sampling, self.energy, generator, like)

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = watched(curve_energy(manifold, curve, t, self.energy)).sum()
                loss.backward()
                return loss

            opt.step(closure)
            if steps % self.check_every == 0 or steps == self.iterations:
                current = check()
                change = (previous - current).abs() / current.abs().clamp_min(torch.finfo(current.dtype).tiny)
                if self.optimizer == "adam" and current.sum() > previous.sum() * (1 - self.tol):
                    for group in opt.param_groups:
                        group["lr"] = max(group["lr"] / 2, self.lr * self.min_lr_factor)
                previous = current
                if not torch.isfinite(current).all() or bool((change < self.tol).all()):
                    break
        finite = torch.isfinite(previous)
        converged = finite & (change < self.tol)
        reasons = [
            None
            if ok
            else (
                "the energy was not finite during the descent (the decoder returned non-finite values "
                "on the curve, or the parameters diverged)"
                if bad
                else f"energy still changing by {ch:.1e} > tol={self.tol:g}"
            )
            for ok, bad, ch in zip(converged.tolist(), (nonfinite | ~finite).tolist(), change.tolist())
        ]
        return converged, reasons, steps
