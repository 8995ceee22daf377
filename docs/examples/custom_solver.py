"""Writing and registering a geodesic solver.

A complete solver: a cubic spline with few knots whose energy, measured by
the manifold on a fixed grid, is minimised by Adam. It is batched over the B
pairs (one curve object holds all of them) and reports convergence per pair.
Run: python docs/examples/custom_solver.py
"""

from typing import Optional

import torch
from stochman.curves import BasicCurve

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.solvers import SolverOutput


class CoarseSplineSolver(vm.GeodesicSolver):
    """Adam on a ``knots``-knot spline; converged when the energy changes by < tol per step."""

    name = "coarse-spline"

    def __init__(self, knots: int = 5, steps: int = 500, lr: float = 0.02, grid: int = 64, tol: float = 1e-7) -> None:
        if knots < 3 or steps < 1 or grid < 2 or not (lr > 0 and tol > 0):
            raise ValueError(f"need knots >= 3, steps >= 1, grid >= 2, lr > 0, tol > 0; got {knots}, {steps}, {grid}, {lr}, {tol}")
        self.knots, self.steps, self.lr, self.grid, self.tol = knots, steps, lr, grid, tol

    def solve(
        self, manifold: vm.DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, init: Optional[BasicCurve] = None
    ) -> SolverOutput:
        curve = vm.SplineCurve(z0, z1, num_nodes=self.knots)  # B curves, starting as straight lines
        optimizer = torch.optim.Adam(curve.parameters(), lr=self.lr)
        previous = torch.full((len(z0),), float("inf"), dtype=z0.dtype)
        change = previous.clone()
        with manifold.frozen():  # gradients for the curve only, not the decoder's weights
            for step in range(1, self.steps + 1):
                optimizer.zero_grad()
                energy = manifold.curve_energy(curve, reduction="none", grid=self.grid)  # (B,)
                energy.sum().backward()
                optimizer.step()
                energy = energy.detach().cpu()
                change = (previous - energy).abs() / energy
                previous = energy
                if bool((change < self.tol).all()):
                    break
        converged = torch.isfinite(previous) & (change < self.tol)
        reasons = [
            None if ok else f"energy still changing by {c:.1e} per step after {step} steps"
            for ok, c in zip(converged.tolist(), change.tolist())
        ]
        return SolverOutput(curve.requires_grad_(False), converged, step, reasons)


vm.register(CoarseSplineSolver)
print(sorted(vm.SOLVERS))

M = analytic.sphere_manifold()
z0, z1 = analytic.sphere_pairs(4, seed=0)
res = vm.connecting_geodesic(M, z0, z1, method="coarse-spline", steps=2000)
truth = analytic.great_circle_distance(z0, z1)
print(res)
print("converged:", res.converged.tolist())
print("max relative error vs great circles:", f"{(res.length / truth - 1).abs().max():.1e}")
print("iterations:", res.iterations)
