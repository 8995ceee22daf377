"""The solver registry: method names to solver classes.

It imports only the base class, so a solver that runs another solver by name
(``ode``'s ``init_solver``, ``graph``'s ``refine``) looks it up here without
importing the package that registers them all (:mod:`vaemanifold.solvers`).
"""

from __future__ import annotations

from .base import GeodesicSolver

#: The method of :func:`vaemanifold.connecting_geodesic`, :func:`vaemanifold.distance`,
#: :func:`vaemanifold.distance_matrix` and ``DecoderManifold.connecting_geodesic`` when none is named.
DEFAULT_METHOD = "gauss_newton"
#: Method name -> solver class, filled by :func:`register`.
SOLVERS: dict[str, type[GeodesicSolver]] = {}


def register(cls: type[GeodesicSolver]) -> type[GeodesicSolver]:
    """Add a solver class to ``SOLVERS`` under its ``name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, GeodesicSolver)):
        raise TypeError(f"{cls!r} is not a GeodesicSolver subclass")
    if not isinstance(getattr(cls, "name", None), str):
        raise ValueError(f"{cls.__name__} needs a class attribute `name`")
    SOLVERS[cls.name] = cls
    return cls


def make_solver(method: "str | GeodesicSolver", **options) -> GeodesicSolver:
    """A solver instance from a name in ``SOLVERS`` (with options) or an instance (as is)."""
    if isinstance(method, GeodesicSolver):
        if options:
            raise ValueError(f"options {sorted(options)} cannot be applied to a solver instance; set them on it")
        return method
    if method not in SOLVERS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(sorted(SOLVERS))}")
    return SOLVERS[method](**options)
