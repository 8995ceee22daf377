"""Geodesics by minimising curve energy over a parametric curve family.

The energy of a curve g on [0, 1] is E = int ||d/dt f(g(t))||^2 dt, f the
decoder embedding. Two estimators:

* ``"jvp"`` (default): (1/n) sum_i ||J_f(g(t_i)) g'(t_i)||^2 with the curve's
  exact derivative g'(t) and one forward-mode JVP of f per sample point;
* ``"fd"``: sum_i ||f(g(t_{i+1})) - f(g(t_i))||^2 / (t_{i+1} - t_i), finite
  differences in data space on sorted t including both ends (stochman's way).

Sample times, redrawn every step unless ``sampling="grid"``:

* ``"grid"``: fixed midpoints (jvp) or a fixed uniform grid (fd);
* ``"stratified"``: one uniform draw in each of n equal bins (default), so a
  curve cannot exploit fixed grid points to step over a high-variance region;
* ``"random"``: n independent uniform draws.

Convergence is judged per pair every ``check_every`` steps on a fixed
``check_points``-point midpoint grid: a pair has converged when its energy
changed by less than ``tol`` (relative) since the previous check. Adam at a
fixed learning rate stalls at a noise floor above any small ``tol``, so when
a check shows no progress for the batch, Adam's learning rate is halved
(down to ``lr * min_lr_factor``; a plateau then ends the run unconverged).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional

import torch
from stochman.curves import BasicCurve

from .._checks import check_choice
from ..manifold import DecoderManifold
from .base import GeodesicSolver, SolverOutput

ENERGIES = ("jvp", "fd")
SAMPLINGS = ("stratified", "random", "grid")
OPTIMIZERS = ("adam", "lbfgs")


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
    """Shared optimisation loop for curve families; subclasses build the curve.

    Options:
        iterations: maximum optimiser steps (default 1000 for Adam, 100 for L-BFGS).
        optimizer: 'adam' (default) or 'lbfgs' (strong-Wolfe line search,
            ``lbfgs_inner`` function evaluations per step).
        lr: learning rate (default 0.01 for Adam, 1.0 for L-BFGS).
        points: sample points per step (default 32).
        sampling: 'stratified' (default), 'random' or 'grid'.
        energy: 'jvp' (default) or 'fd'.
        tol: relative energy change between checks that counts as converged (default 1e-4).
        check_every: steps between convergence checks (default 25 for Adam, 1 for L-BFGS).
        min_lr_factor: Adam's learning rate is halved on a plateau down to lr * this (default 1e-3).
        check_points: points of the fixed check grid (default 64).
        seed: seed of the sampling (and of the curve's initial weights).
    """

    def __init__(
        self,
        iterations: Optional[int] = None,
        optimizer: str = "adam",
        lr: Optional[float] = None,
        points: int = 32,
        sampling: str = "stratified",
        energy: str = "jvp",
        tol: float = 1e-4,
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
            iterations = 1000 if optimizer == "adam" else 100
        if check_every is None:
            check_every = 25 if optimizer == "adam" else 1
        if iterations < 1 or points < 2 or check_every < 1 or check_points < 2:
            raise ValueError("iterations, check_every must be >= 1 and points, check_points >= 2")
        if tol <= 0:
            raise ValueError(f"tol must be positive, got {tol}")
        self.iterations = int(iterations)
        self.optimizer = optimizer
        self.lr = float(lr) if lr is not None else (0.01 if optimizer == "adam" else 1.0)
        self.points = int(points)
        self.sampling = sampling
        self.energy = energy
        self.tol = float(tol)
        self.check_every = int(check_every)
        self.check_points = int(check_points)
        self.min_lr_factor = float(min_lr_factor)
        self.lbfgs_inner = int(lbfgs_inner)
        self.seed = int(seed)

    @abstractmethod
    def make_curve(self, z0: torch.Tensor, z1: torch.Tensor) -> BasicCurve:
        """A trainable curve family starting at the straight line: (B, d), (B, d) -> B curves."""

    def solve(
        self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        torch.manual_seed(self.seed)
        curve = self.make_curve(z0, z1).to(z0.device)
        if init is not None:
            fit_t = torch.linspace(0, 1, 4 * self.check_points, dtype=z0.dtype, device=z0.device)
            with torch.no_grad():
                target = init(fit_t).reshape(len(z0), fit_t.numel(), -1)
            curve.fit(fit_t, target)
        params = [p for p in curve.parameters() if p.requires_grad]
        if self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.lr)
        else:
            opt = torch.optim.LBFGS(params, lr=self.lr, max_iter=self.lbfgs_inner, line_search_fn="strong_wolfe")
        generator = torch.Generator().manual_seed(self.seed)
        check_t = sample_times(self.check_points, len(z0), "grid", "jvp", generator, z0)

        def check() -> torch.Tensor:
            with torch.no_grad():
                return curve_energy(manifold, curve, check_t, "jvp")

        previous = check()
        change = torch.full_like(previous, float("inf"))
        steps = 0
        with manifold.frozen():
            for steps in range(1, self.iterations + 1):
                t = sample_times(self.points, len(z0), self.sampling, self.energy, generator, z0)

                def closure() -> torch.Tensor:
                    opt.zero_grad()
                    loss = curve_energy(manifold, curve, t, self.energy).sum()
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
            else ("energy is not finite" if not fin else f"energy still changing by {ch:.1e} > tol={self.tol:g}")
            for ok, fin, ch in zip(converged.tolist(), finite.tolist(), change.tolist())
        ]
        return SolverOutput(curve.requires_grad_(False), converged.cpu(), steps, reasons)
