"""One entry point for every geodesic solver, and distances built on it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Union

import torch
from stochman.curves import BasicCurve

from ._checks import check_choice, check_endpoints
from .curves import SplineCurve
from .manifold import DecoderManifold, install_geodesic_entry, polyline_energy, polyline_length
from .solvers import DEFAULT_METHOD, GeodesicSolver, make_solver

#: Points of the common dense grid on which every curve is measured.
MEASURE_GRID = 512
#: Curves embedded at once when measuring (bounds memory: MEASURE_CHUNK * (2 grid - 1) * D numbers;
#: about 0.4 GB in float32 for 784-pixel images with their sigma at the default grid).
MEASURE_CHUNK = 64
#: Endpoints of a solver's curve may deviate from the requested ones by this (relative) much.
ENDPOINT_TOL = 1e-4
FAILURE_POLICIES = ("raise", "nan", "keep")


@dataclass
class GeodesicResult:
    """Geodesics for B endpoint pairs, measured on one common dense grid.

    Attributes:
        curve: the B curves (a stochman ``BasicCurve``).
        length: (B,) length on ``grid`` points, independent of the solver's own grid.
        energy: (B,) energy int ||d/dt f(c(t))||^2 dt on the same grid (length^2 at constant speed).
        converged: (B,) bool, per pair.
        reasons: per pair, None where converged, else why not.
        iterations: iterations the solver ran.
        seconds: wall time of the solver for the whole batch (measurement excluded).
        evaluations: decoder evaluations (points) the solver used.
        method: the solver's name.
        grid: points of the measuring grid.
        grid_change: (B,) relative change of ``length`` when the grid is doubled;
            small values show that the grid resolves the curve (NaN where it was
            not measured: ``connecting_geodesic(..., grid_change=False)``).
    """

    curve: BasicCurve
    length: torch.Tensor
    energy: torch.Tensor
    converged: torch.Tensor
    reasons: list[Optional[str]]
    iterations: int
    seconds: float
    evaluations: int
    method: str
    grid: int
    grid_change: torch.Tensor

    def __len__(self) -> int:
        return len(self.length)

    def __repr__(self) -> str:
        median = f"{self.length.median().item():.4g}" if len(self) else "n/a"
        return (
            f"GeodesicResult(method={self.method!r}, pairs={len(self)}, converged={int(self.converged.sum())}"
            f"/{len(self)}, median length={median}, seconds={self.seconds:.3g})"
        )


def _device_of(manifold: DecoderManifold, fallback: torch.device) -> torch.device:
    tensor = next(iter(manifold.parameters()), None)
    if tensor is None:
        tensor = next(iter(manifold.buffers()), None)
    return tensor.device if tensor is not None else fallback


def _dtype_of(manifold: DecoderManifold, fallback: torch.dtype) -> torch.dtype:
    """The dtype of the decoder's first floating-point parameter or buffer (``fallback`` without one)."""
    for tensor in (*manifold.parameters(), *manifold.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return fallback


def _empty_result(z0: torch.Tensor, z1: torch.Tensor, method: str, grid: int) -> GeodesicResult:
    """The result for zero pairs: empty tensors, no curve evaluated, no solver run."""
    empty = z0.new_zeros(0)
    curve = SplineCurve(z0, z1, num_nodes=3, requires_grad=False)
    return GeodesicResult(
        curve, empty, empty.clone(), torch.zeros(0, dtype=torch.bool), [], 0, 0.0, 0, method, grid, empty.clone()
    )


def measure(manifold: DecoderManifold, curve: BasicCurve, grid: int = MEASURE_GRID, grid_change: bool = True):
    """Length, energy and grid_change of B curves on the dense grid (see GeodesicResult).

    With ``grid_change=False`` only the grid's points are evaluated (half the
    decoder passes) and grid_change is NaN.

    Returns:
        (length (B,), energy (B,), grid_change (B,), points (B, grid, d)).
    """
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    dtype, device = curve.begin.dtype, curve.begin.device
    step = 2 if grid_change else 1  # the grid's points are every other point of the doubled grid
    parts = []
    with torch.no_grad():
        sampled = curve(torch.linspace(0, 1, step * (grid - 1) + 1, dtype=dtype, device=device))
        sampled = sampled.reshape(len(curve), step * (grid - 1) + 1, -1)
        for chunk in sampled.split(MEASURE_CHUNK):
            embedded = manifold.embed(chunk)
            on_grid = embedded[:, ::step]
            doubled = polyline_length(embedded) if grid_change else torch.full_like(on_grid[:, 0, 0], float("nan"))
            parts.append((polyline_length(on_grid), doubled, polyline_energy(on_grid)))
    length, fine_length, energy = (torch.cat(values) for values in zip(*parts)) if parts else (sampled.new_zeros(0),) * 3
    change = (fine_length - length).abs() / fine_length.clamp_min(torch.finfo(dtype).tiny)
    return length, energy, change, sampled[:, ::step]


def connecting_geodesic(
    manifold: DecoderManifold,
    z0: torch.Tensor,
    z1: torch.Tensor,
    method: Union[str, GeodesicSolver] = DEFAULT_METHOD,
    init: Optional[BasicCurve] = None,
    grid: int = MEASURE_GRID,
    grid_change: bool = True,
    **options,
) -> GeodesicResult:
    """Geodesics from z0[b] to z1[b] with the chosen solver.

    Args:
        manifold: a :class:`DecoderManifold`.
        z0, z1: (d,) or (B, d) endpoints (a single point is broadcast). They are
            moved to the decoder's device and dtype (that of its first
            floating-point parameter or buffer; a decoder without any keeps the
            endpoints' dtype), so the result is in the decoder's dtype. B = 0
            gives an empty result.
        method: a name in :data:`vaemanifold.SOLVERS` or a solver instance.
        init: optional B initial curves, for solvers that refine a curve.
        grid: points of the dense grid on which results are measured.
        grid_change: also measure on the doubled grid (``GeodesicResult.grid_change``);
            False halves the cost of measuring, for many pairs whose grid was
            checked on a sample (:func:`vaemanifold.distances.grid_cost`).
        **options: passed to the solver class (see each solver's docstring).

    Returns:
        a :class:`GeodesicResult`; always check ``converged``.
    """
    if not isinstance(manifold, DecoderManifold):
        raise TypeError(f"manifold must be a DecoderManifold, got {type(manifold).__name__}")
    manifold.check_points(z0, "z0")  # a manifold that does not know d yet learns it here
    z0, z1 = check_endpoints(z0, z1, manifold.latent_dim)
    device, dtype = _device_of(manifold, z0.device), _dtype_of(manifold, z0.dtype)
    z0, z1 = z0.detach().to(device, dtype), z1.detach().to(device, dtype)
    solver = make_solver(method, **options)
    if len(z0) == 0:
        return _empty_result(z0, z1, solver.name, grid)
    if init is not None:
        if not isinstance(init, BasicCurve):
            raise TypeError(f"init must be a stochman BasicCurve, got {type(init).__name__}")
        if len(init) != len(z0):
            raise ValueError(f"init holds {len(init)} curves for {len(z0)} endpoint pairs")

    evaluations = manifold.evaluations
    start = time.perf_counter()
    out = solver.solve(manifold, z0, z1, init)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    evaluations = manifold.evaluations - evaluations

    length, energy, change, points = measure(manifold, out.curve, grid, grid_change)
    scale = 1 + (z1 - z0).norm(dim=-1)
    gap = torch.maximum((points[:, 0] - z0).norm(dim=-1), (points[:, -1] - z1).norm(dim=-1))
    if (gap > ENDPOINT_TOL * scale).any():
        raise RuntimeError(f"solver {solver.name!r} returned curves whose endpoints miss z0/z1 by {gap.max():.2e}")
    converged = out.converged.to(device) & torch.isfinite(length)
    reasons = list(out.reasons) if out.reasons else [None] * len(z0)
    for b in (~torch.isfinite(length)).nonzero().flatten().tolist():
        cause = (
            "the length on the dense grid is not finite: the decoder returned non-finite values on the curve"
            if bool(torch.isfinite(points[b]).all())
            else "the curve is not finite"
        )
        reasons[b] = cause if reasons[b] is None else f"{cause} ({reasons[b]})"
    return GeodesicResult(
        curve=out.curve,
        length=length,
        energy=energy,
        converged=converged,
        reasons=[None if ok else (r or "not converged") for ok, r in zip(converged.tolist(), reasons)],
        iterations=out.iterations,
        seconds=seconds,
        evaluations=evaluations,
        method=solver.name,
        grid=grid,
        grid_change=change,
    )


def _lengths_or_failure(result: GeodesicResult, on_failure: str) -> torch.Tensor:
    if bool(result.converged.all()) or on_failure == "keep":
        return result.length
    failed = (~result.converged).nonzero().flatten().tolist()
    if on_failure == "raise":
        raise RuntimeError(
            f"{len(failed)} of {len(result)} geodesics did not converge (first: pair {failed[0]}, "
            f"{result.reasons[failed[0]]}); pass on_failure='nan' or 'keep', or change the solver's options"
        )
    return torch.where(result.converged, result.length, torch.full_like(result.length, float("nan")))


def distance(
    manifold: DecoderManifold,
    z0: torch.Tensor,
    z1: torch.Tensor,
    method: Union[str, GeodesicSolver] = DEFAULT_METHOD,
    on_failure: str = "raise",
    **options,
) -> torch.Tensor:
    """Geodesic distances between z0[b] and z1[b]: (B,).

    Args:
        on_failure: what a pair whose solver did not converge gets: 'raise'
            (default) an error, 'nan', or 'keep' the length of the unconverged
            curve (an upper bound on the distance).
        method, options: as for :func:`connecting_geodesic`.
    """
    check_choice("on_failure", on_failure, FAILURE_POLICIES)
    result = connecting_geodesic(manifold, z0, z1, method=method, **options)
    return _lengths_or_failure(result, on_failure)


install_geodesic_entry(connecting_geodesic)
