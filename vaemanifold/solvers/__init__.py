"""Geodesic solvers and their registry (torchdiffeq's ``method=`` pattern).

``SOLVERS`` maps a method name to a solver class; options given to
:func:`vaemanifold.connecting_geodesic` go to that class's constructor.
Register your own with :func:`register`.
"""

from __future__ import annotations

from .amortized import AmortizedSolver
from .base import GeodesicSolver, SolverOutput
from .gauss_newton import GaussNewtonSolver
from .graph import GraphSolver
from .linear import LinearSolver
from .neural import NeuralSolver
from .ode import ODESolver
from .registry import DEFAULT_METHOD, SOLVERS, make_solver, register
from .spline import SplineSolver

for _cls in (LinearSolver, GaussNewtonSolver, NeuralSolver, SplineSolver, ODESolver, GraphSolver, AmortizedSolver):
    register(_cls)

__all__ = ["DEFAULT_METHOD", "SOLVERS", "GeodesicSolver", "SolverOutput", "make_solver", "register"]
