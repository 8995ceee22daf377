"""Head-to-head benchmark of geodesic solvers on one decoder (issue #4).

Every solver registered in :data:`vaemanifold.SOLVERS` (so a newly registered
one is benchmarked automatically), stochman's stock
``Manifold.connecting_geodesic`` and a long-budget reference connect the same
B endpoint pairs. Each run is batched over the pairs, after a warm-up call on
the first pair (its time is kept as ``setup_seconds``: it includes one-off
work such as building the graph solver's k-NN graph, which the timed call
then reuses from the solver's cache). Every curve is measured on one common
dense grid (:func:`vaemanifold.geodesic.measure`; ``grid_change`` shows how
much doubling that grid changes a length).

Time is also reported in *floors*: the wall time of one dense length
evaluation of B curves (``grid`` decoder points a pair, :func:`measure_floor`),
measured right before each timed run, so that a change of the machine's load
during a long benchmark does not skew the ratios, and ratios travel between
machines where seconds do not. No solver can hand back a measured answer
faster than one floor.

Quality is the *length ratio*: a curve's dense length over the best known
length of its pair, the shortest dense length any run found (head-to-head,
reference or time-to-quality run; every curve's length is an upper bound on
the distance, converged or not). Ratios of non-finite lengths are left out of
the median and 90th percentile (numpy's linear interpolation) and count as
not within 1%; every unconverged pair counts as a failure.

Time-to-quality: each solver with a budget ladder (:data:`LADDERS`) is run at
growing budgets; each step gives (seconds and floors per pair, median and
90th-percentile length ratio). A solver without a ladder contributes its
head-to-head run.

Outputs (benchmark.json and its schema, benchmark.md, the time-to-quality
plot) are written by :mod:`vaemanifold.evaluation.report`.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from stochman.curves import BasicCurve, CubicSpline
from stochman.geodesic import geodesic_minimizing_energy
from stochman.manifold import EmbeddedManifold

from ..geodesic import MEASURE_GRID, _device_of, connecting_geodesic, measure
from ..manifold import DecoderManifold
from ..solvers import SOLVERS, make_solver
from ..curves import line_points
from .problems import Problem

#: Label of stochman's stock connecting_geodesic (a pseudo-solver in budgets and ladders).
STOCHMAN = "stochman"
#: Prefix of the reference runs' labels.
REFERENCE = "reference"
#: A pair whose length is within this factor of the best known counts as "within 1%".
WITHIN = 1.01
_STOCK = inspect.signature(geodesic_minimizing_energy).parameters
#: stochman's hard-coded energy grid and iteration cap (read from its signature).
STOCHMAN_GRID = int(_STOCK["eval_grid"].default)
STOCHMAN_ITERATIONS = int(_STOCK["max_iter"].default)

#: Declared budget (constructor options on top of the solver's defaults) per method in the
#: head-to-head table; the JSON spells out every option each method ran with. Solvers not
#: listed run at their defaults, every one from the straight line except the Gauss-Newton
#: solver, whose default ``graph_start`` starts each pair from the line or from the path on the
#: k-NN graph of the training codes, whichever has the lower energy (its graph is built in the
#: warm-up, as the graph solver's), and the ODE, which
#: starts from its default ``init_solver`` (the Gauss-Newton solver; from the straight line
#: scipy's mesh outgrows any node limit on trained decoders: measured on mnist-2d, 3 of 4
#: pairs failed at 1000 nodes, 128 s per pair); its time includes that start. stochman's
#: only budget is ``max_iter`` (None: connecting_geodesic as shipped).
BUDGETS: dict[str, dict] = {
    "graph": {"refine": None},  # the raw graph curves; refined, it would be gauss_newton started elsewhere
    STOCHMAN: {"max_iter": None},
}
#: Registered solvers the head-to-head table leaves out, and why: they need a per-problem setup
#: that the table does not time. ``vaemanifold amortize`` measures the amortized solver, its
#: fit as the setup, on the same held-out pairs.
NOT_BENCHMARKED: dict[str, str] = {"amortized": "needs a network fitted to the problem's manifold"}
#: --quick: factors applied to the budgets' option values (see :func:`scaled_budget`).
QUICK_SCALE: dict[str, dict[str, float]] = {
    "ode": {"tol": 10.0, "max_nodes": 0.3},
}
#: Time-to-quality ladders: method -> (the option that varies, factors on its budget value).
#: Integer options are rounded (at least 1); a factor of 1 reuses the head-to-head run. The
#: Gauss-Newton solvers stop by convergence, so their ladders loosen and tighten ``tol``.
LADDERS: dict[str, tuple[str, tuple[float, ...]]] = {
    "gauss_newton": ("tol", (100, 10, 1, 0.1)),
    "neural": ("tol", (100, 10, 1, 0.1)),
    "spline": ("tol", (100, 10, 1, 0.1)),
    "ode": ("tol", (10, 1, 0.1, 0.01)),
    "graph": ("k", (0.5, 1, 2, 4)),
    STOCHMAN: ("max_iter", (1 / 6, 1 / 3, 2 / 3, 1, 2, 4)),
}
QUICK_LADDERS: dict[str, tuple[str, tuple[float, ...]]] = {
    "gauss_newton": ("tol", (10, 1)),
    "neural": ("tol", (10, 1)),
    "spline": ("tol", (10, 1)),
    "graph": ("k", (0.5, 1, 2)),
    STOCHMAN: ("max_iter", (1 / 6, 1)),
}
#: The long-budget reference: solver steps, each initialised from the previous step's
#: curves, options pinned in full (changes of the solvers' defaults do not move it): the
#: Gauss-Newton solver far past its defaults (512 segments, tol 1e-8), then the geodesic ODE
#: from its curves (a second, independent discretisation).
REFERENCE_STEPS: tuple[tuple[str, dict], ...] = (
    (
        "gauss_newton",
        {
            "levels": (16, 32, 64, 128, 256, 512), "tol": 1e-8, "iterations": 100, "coarse_tol": 1e-3,
            "coarse_iterations": 30, "extra_levels": 0, "graph_start": False,
        },
    ),
    ("ode", {"tol": 1e-5, "max_nodes": 2000}),
)
#: A grid resolves a curve when doubling it changes the length by less than this (the report's check).
GRID_TOL = 1e-3
#: A length counts towards the best known only when doubling the dense grid changes it by at most
#: this (relative): a curve with detail finer than the grid is measured short, since a polyline
#: through a curve's points is never longer than the curve. (A 2,048-segment reference curve that
#: stalled on a mnist-2d pair measured 37% below every converged solver's length, and 5.1% longer
#: on the doubled grid; the presets' resolved curves change by less than 2e-4.)
BEST_GRID_TOL = 1e-2
#: Repetitions of the floor measurement (the fastest is kept).
FLOOR_REPEATS = 5

Log = Optional[Callable[[str], None]]


@dataclass
class SolverRun:
    """One batched run of one method over the B pairs of a problem.

    Attributes:
        label: the row's name ('neural', 'stochman', 'reference:ode', 'spline@iterations=100').
        solver: the method: a name in SOLVERS or 'stochman'.
        budget: the declared options (problem-wide extras such as graph points excluded).
        length, energy, grid_change: (B,) on the common dense grid.
        converged: (B,) bool.
        reasons: per pair, None where converged, else why not.
        seconds: wall time of the timed batched call.
        iterations: iterations the method ran.
        evaluations: decoder evaluations (latent points) of the timed call.
        setup_seconds: wall time of the warm-up call (0 without one).
        options: every option the method ran with (:func:`resolved_options`; extras excluded).
        curve: the B curves (not serialised).
        floor: seconds per pair of one dense length evaluation, measured right before the run
            (None where none was measured).
    """

    label: str
    solver: str
    budget: dict
    length: torch.Tensor
    energy: torch.Tensor
    grid_change: torch.Tensor
    converged: torch.Tensor
    reasons: list[Optional[str]]
    seconds: float
    iterations: int
    evaluations: int
    setup_seconds: float = 0.0
    options: dict = field(default_factory=dict)
    curve: Optional[BasicCurve] = field(default=None, repr=False)
    floor: Optional[float] = None

    @property
    def floors_per_pair(self) -> Optional[float]:
        """Seconds per pair over the run's floor (None without a floor)."""
        return _floors(self.seconds_per_pair, self.floor)

    @property
    def pairs(self) -> int:
        return len(self.length)

    @property
    def seconds_per_pair(self) -> float:
        return self.seconds / self.pairs

    def records(self, best: torch.Tensor) -> list[dict]:
        """Per-pair JSON records (keys: :data:`vaemanifold.evaluation.report.RECORD_KEYS`)."""
        ratio = self.length / best
        return [
            {
                "pair": b,
                "solver": self.label,
                "length": _number(self.length[b]),
                "energy": _number(self.energy[b]),
                "length_ratio": _number(ratio[b]),
                "grid_change": _number(self.grid_change[b]),
                "seconds_per_pair": _number(self.seconds_per_pair),
                "iterations": self.iterations,
                "evaluations": self.evaluations,
                "converged": bool(self.converged[b]),
                "reason": self.reasons[b],
            }
            for b in range(self.pairs)
        ]


def _number(x: torch.Tensor | float) -> Optional[float]:
    """A JSON number: float, or None for NaN and infinities."""
    x = float(x)
    return x if np.isfinite(x) else None


def jsonable(options: Mapping) -> dict:
    """Options as JSON values: tensors become 'tensor(shape)', modules their class name, tuples lists."""

    def convert(value):
        if isinstance(value, torch.Tensor):
            return f"tensor{tuple(value.shape)}"
        if isinstance(value, torch.nn.Module):
            return type(value).__name__
        if isinstance(value, (tuple, list)):
            return [convert(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    return {str(k): convert(v) for k, v in options.items()}


def device_of(manifold: DecoderManifold) -> torch.device:
    """Where the manifold's decoder lives (CPU for a parameter-free decoder)."""
    return _device_of(manifold, torch.device("cpu"))


def _merge(extra: Mapping, budget: Mapping, name: str) -> dict:
    clash = sorted(set(extra) & set(budget))
    if clash:
        raise ValueError(f"budget of {name!r} repeats the problem's own options {clash}")
    return {**extra, **budget}


# ---------------------------------------------------------------------- runs
def measure_floor(problem: Problem, grid: int = MEASURE_GRID, repeats: int = FLOOR_REPEATS) -> float:
    """Seconds per pair of one dense length evaluation of the problem's B curves (the floor).

    The straight lines are evaluated on ``grid`` points each (:meth:`DecoderManifold.curve_length`
    on a (B, grid, d) batch; a curve's shape does not change the cost), once to warm up and then
    ``repeats`` times; the fastest is kept. The floor is a lower bound, and on a CPU the same
    evaluation takes from 6.5 to 10 ms a pair on mnist-2d depending on the allocator's state
    after the previous run (measured), so the median flattered the solvers timed after a slow one.
    """
    manifold = problem.manifold
    device = device_of(manifold)
    z0, z1 = problem.z0.to(device), problem.z1.to(device)
    points = line_points(z0, z1, torch.linspace(0, 1, grid, dtype=z0.dtype, device=device))
    times = []
    with torch.no_grad():
        for repeat in range(repeats + 1):
            start = time.perf_counter()
            manifold.curve_length(points)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if repeat:
                times.append(time.perf_counter() - start)
    return min(times) / problem.pairs


def run_solver(
    manifold: DecoderManifold,
    z0: torch.Tensor,
    z1: torch.Tensor,
    name: str,
    budget: Mapping,
    extra: Optional[Mapping] = None,
    grid: int = MEASURE_GRID,
    warmup: bool = True,
    init: Optional[BasicCurve] = None,
    label: Optional[str] = None,
) -> SolverRun:
    """Run a registered solver over the pairs (z0, z1), each (B, d), via vm.connecting_geodesic.

    Args:
        budget: the solver's declared options.
        extra: further options that are not part of the budget (graph points).
        warmup: first run the same solver on the first pair (timed as ``setup_seconds``).
        init: initial curves, passed on as ``init`` (no warm-up then).
    """
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; valid: {', '.join(sorted(SOLVERS))}")
    options = _merge(extra or {}, budget, name)
    setup = 0.0
    if warmup and init is None:
        start = time.perf_counter()
        connecting_geodesic(manifold, z0[:1], z1[:1], method=name, grid=grid, **options)
        setup = time.perf_counter() - start
    result = connecting_geodesic(manifold, z0, z1, method=name, init=init, grid=grid, **options)
    return SolverRun(
        label=label or name,
        solver=name,
        budget=dict(budget),
        length=result.length.detach().cpu().double(),
        energy=result.energy.detach().cpu().double(),
        grid_change=result.grid_change.detach().cpu().double(),
        converged=result.converged.detach().cpu(),
        reasons=list(result.reasons),
        seconds=result.seconds,
        iterations=result.iterations,
        evaluations=result.evaluations,
        setup_seconds=setup,
        options=resolved_options(name, options),
        curve=result.curve,
    )


def stochman_geodesic(
    manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor, max_iter: Optional[int] = None
) -> tuple[BasicCurve, bool]:
    """stochman's stock geodesic: a ``CubicSpline`` fitted by ``geodesic_minimizing_energy``.

    ``max_iter=None`` calls ``EmbeddedManifold.connecting_geodesic`` as shipped
    (Adam lr 0.1, 150 iterations, a 20-point grid; our DecoderManifold overrides
    that method, so it is called on the base class); an integer runs the same
    stock optimiser with that iteration cap (stochman's only budget knob).
    The decoder's parameters are frozen meanwhile, as in vaemanifold's own
    solvers, so timings compare the algorithms and the caller's ``.grad`` is untouched.

    Returns:
        (curve, success): stochman's all-or-nothing flag, True when the largest
        gradient entry fell below 1e-4.
    """
    with manifold.frozen():
        if max_iter is None:
            curve, success = EmbeddedManifold.connecting_geodesic(manifold, z0, z1)
        else:
            curve = CubicSpline(z0, z1)
            success = geodesic_minimizing_energy(curve, manifold, max_iter=int(max_iter))
    for p in curve.parameters():
        p.requires_grad_(False)
    return curve, bool(success)


def run_stochman(
    manifold: DecoderManifold,
    z0: torch.Tensor,
    z1: torch.Tensor,
    max_iter: Optional[int] = None,
    grid: int = MEASURE_GRID,
    warmup: bool = True,
    label: str = STOCHMAN,
) -> SolverRun:
    """Time :func:`stochman_geodesic` over the pairs and measure its curves on the common dense grid.

    Its iterations are counted from the decoder evaluations (each stock step
    evaluates the energy at B x 20 points).
    """
    device = device_of(manifold)
    z0, z1 = z0.detach().to(device), z1.detach().to(device)
    setup = 0.0
    if warmup:
        start = time.perf_counter()
        stochman_geodesic(manifold, z0[:1], z1[:1], max_iter)
        setup = time.perf_counter() - start
    before = manifold.evaluations
    start = time.perf_counter()
    curve, success = stochman_geodesic(manifold, z0, z1, max_iter)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    evaluations = manifold.evaluations - before
    iterations = evaluations // (len(z0) * STOCHMAN_GRID)
    length, energy, change, _ = measure(manifold, curve, grid)
    converged = torch.full((len(z0),), success) & torch.isfinite(length).cpu()
    reason = (
        f"stochman's all-or-nothing flag: the largest gradient entry over all {len(z0)} curves "
        f"stayed >= 1e-4 for {iterations} iterations"
    )
    return SolverRun(
        label=label,
        solver=STOCHMAN,
        budget={"max_iter": max_iter},
        length=length.detach().cpu().double(),
        energy=energy.detach().cpu().double(),
        grid_change=change.detach().cpu().double(),
        converged=converged,
        reasons=[None if ok else reason for ok in converged.tolist()],
        seconds=seconds,
        iterations=int(iterations),
        evaluations=int(evaluations),
        setup_seconds=setup,
        options=resolved_options(STOCHMAN, {"max_iter": max_iter}),
        curve=curve,
    )


def crashed_run(name: str, budget: Mapping, pairs: int, error: Exception, label: Optional[str] = None) -> SolverRun:
    """The record of a run that raised: no curves, NaN lengths, every pair failed with the error as reason."""
    nan = torch.full((pairs,), float("nan"), dtype=torch.float64)
    reason = f"raised {type(error).__name__}: {error}"
    return SolverRun(
        label=label or name,
        solver=name,
        budget=dict(budget),
        length=nan,
        energy=nan.clone(),
        grid_change=nan.clone(),
        converged=torch.zeros(pairs, dtype=torch.bool),
        reasons=[reason] * pairs,
        seconds=float("nan"),
        iterations=0,
        evaluations=0,
        options=resolved_options(name, budget),
    )


def run_method(
    problem: Problem, name: str, budget: Mapping, grid: int = MEASURE_GRID, warmup: bool = True, label: Optional[str] = None
) -> SolverRun:
    """One run of a registered solver or of 'stochman' on a problem (its solver_options added).

    Options are checked first (a bad budget raises); a run that raises
    afterwards is recorded by :func:`crashed_run`, so one failing solver does
    not end a benchmark.
    """
    resolved_options(name, _merge(problem.solver_options.get(name, {}), budget, name))
    if name == STOCHMAN and set(budget) - {"max_iter"}:
        raise ValueError(f"stochman takes only max_iter as its budget, got {sorted(set(budget) - {'max_iter'})}")
    try:
        if name == STOCHMAN:
            return run_stochman(
                problem.manifold, problem.z0, problem.z1, budget.get("max_iter"), grid, warmup, label or name
            )
        extra = problem.solver_options.get(name, {})
        return run_solver(problem.manifold, problem.z0, problem.z1, name, budget, extra, grid, warmup, label=label)
    except Exception as error:  # noqa: BLE001 -- any solver failure is a result to record, not a crash
        return crashed_run(name, budget, problem.pairs, error, label)


def run_reference(
    problem: Problem, steps: Sequence[tuple[str, dict]] = REFERENCE_STEPS, grid: int = MEASURE_GRID
) -> list[SolverRun]:
    """The long-budget reference: each step starts from the previous step's curves.

    Returns one run per step, labelled 'reference:<solver>'.
    """
    runs: list[SolverRun] = []
    for name, budget in steps:
        init = runs[-1].curve if runs else None
        extra = problem.solver_options.get(name, {})
        label = f"{REFERENCE}:{name}"
        resolved_options(name, budget)
        floor = measure_floor(problem, grid)
        try:
            run = run_solver(
                problem.manifold, problem.z0, problem.z1, name, budget, extra, grid, warmup=False, init=init, label=label
            )
        except Exception as error:  # noqa: BLE001 -- recorded like run_method's; later steps start afresh
            run = crashed_run(name, budget, problem.pairs, error, label)
        run.floor = floor
        runs.append(run)
    return runs


# ----------------------------------------------------------------- statistics
def best_known(runs: Sequence[SolverRun]) -> tuple[torch.Tensor, list[Optional[str]]]:
    """Per pair, the shortest dense length over the runs that the grid resolves, and the label of the run that
    found it.

    A length counts when it is finite and doubling the dense grid changes it by at most :data:`BEST_GRID_TOL`
    (so a run's own ratio can fall below 1 where its curve is not resolved).

    Returns:
        (best (B,), labels); a pair no run measured so gets NaN and None.
    """
    if not runs:
        raise ValueError("best_known needs at least one run")
    lengths = torch.stack([r.length.double() for r in runs])  # (R, B)
    resolved = torch.stack([r.grid_change.double() <= BEST_GRID_TOL for r in runs])
    finite = torch.where(torch.isfinite(lengths) & resolved, lengths, torch.full_like(lengths, float("inf")))
    best, index = finite.min(dim=0)
    labels = [runs[i].label if torch.isfinite(b) else None for i, b in zip(index.tolist(), best)]
    return torch.where(torch.isfinite(best), best, torch.full_like(best, float("nan"))), labels


def ratio_statistics(ratio: torch.Tensor) -> dict:
    """Median and 90th percentile of the finite ratios, and the fraction of all pairs within 1%.

    Args:
        ratio: (B,) length ratios to the best known (non-finite: a failed measurement).
    """
    r = ratio.detach().cpu().double().numpy()
    ok = r[np.isfinite(r)]
    return {
        "median_length_ratio": float(np.median(ok)) if len(ok) else None,
        "p90_length_ratio": float(np.percentile(ok, 90)) if len(ok) else None,
        "frac_within_1pct": float(np.mean(np.isfinite(r) & (r <= WITHIN))) if len(r) else None,
    }


def summarize(run: SolverRun, best: torch.Tensor, truth: Optional[torch.Tensor] = None) -> dict:
    """The head-to-head row of one run: ratio statistics, time (also in floors), work and failures.

    With ``truth`` (B,) also the median and largest ``abs(length / truth - 1)`` (over finite lengths).
    """
    failed = [r for ok, r in zip(run.converged.tolist(), run.reasons) if not ok]
    row = {
        "solver": run.label,
        "method": run.solver,
        "budget": jsonable(run.budget),
        "options": jsonable(run.options),
        **ratio_statistics(run.length / best),
        "median_seconds_per_pair": _number(run.seconds_per_pair),
        "floors_per_pair": run.floors_per_pair,
        "floor_seconds_per_pair": run.floor,
        "setup_seconds": run.setup_seconds,
        "iterations": run.iterations,
        "evaluations_per_pair": run.evaluations / run.pairs,
        "failures": len(failed),
        "failure_example": failed[0] if failed else None,
        "max_grid_change": _number(run.grid_change.max()),
    }
    if truth is not None:
        error = (run.length / truth.detach().cpu().double() - 1).abs().numpy()
        error = error[np.isfinite(error)]
        row["median_error_vs_truth"] = float(np.median(error)) if len(error) else None
        row["max_error_vs_truth"] = float(error.max()) if len(error) else None
    return row


def _floors(seconds: float, floor: Optional[float]) -> Optional[float]:
    """Seconds per pair in floors (None without a floor or a finite time)."""
    return None if floor is None or not floor > 0 else _number(seconds / floor)


# ---------------------------------------------------------------- benchmark
@dataclass
class BenchmarkResult:
    """Every run on one problem: head-to-head (solvers, stochman, reference) and time-to-quality ladders.

    Each run carries its own floor (:func:`measure_floor`, taken right before it); :attr:`floor`
    is their median, for the report's header.
    """

    problem: Problem
    runs: list[SolverRun]
    ladders: dict[str, list[SolverRun]] = field(default_factory=dict)

    @property
    def floor(self) -> Optional[float]:
        """The median of the runs' floors, seconds per pair (None where no run has one)."""
        unique = {id(r): r for r in self.all_runs}.values()  # a ladder may reuse a head-to-head run
        floors = [r.floor for r in unique if r.floor is not None]
        return float(np.median(floors)) if floors else None

    @property
    def all_runs(self) -> list[SolverRun]:
        return self.runs + [r for steps in self.ladders.values() for r in steps]

    def best(self) -> tuple[torch.Tensor, list[Optional[str]]]:
        """Best known length per pair over every run (see :func:`best_known`)."""
        return best_known(self.all_runs)

    def summary(self) -> list[dict]:
        best, _ = self.best()
        return [summarize(r, best, self.problem.truth) for r in self.runs]

    def records(self) -> list[dict]:
        best, _ = self.best()
        return [record for r in self.runs for record in r.records(best)]

    def time_to_quality(self) -> dict[str, list[dict]]:
        """Per solver, the (seconds and floors per pair, length-ratio statistics) steps of its ladder, in budget order."""
        best, _ = self.best()
        curves: dict[str, list[dict]] = {}
        for run in self.runs:
            if run.label.startswith(REFERENCE):
                continue
            # a solver with a ladder is one curve; an extra row (amortized + refine: its label is no
            # method's name, so no ladder's) is a curve of its own
            steps = self.ladders.get(run.label) or [run]
            curves[run.label] = [
                {
                    "label": s.label,
                    "budget": jsonable(s.budget),
                    "seconds_per_pair": _number(s.seconds_per_pair),
                    "floors_per_pair": s.floors_per_pair,
                    "iterations": s.iterations,
                    "failures": int((~s.converged).sum()),
                    "failure_example": next((r for ok, r in zip(s.converged.tolist(), s.reasons) if not ok), None),
                    **ratio_statistics(s.length / best),
                }
                for s in steps
            ]
        return curves

    def to_dict(self) -> dict:
        best, source = self.best()
        p = self.problem
        return {
            "name": p.name,
            "description": p.description,
            "latent_dim": p.manifold.latent_dim,
            "pairs": p.pairs,
            "floor_seconds_per_pair": self.floor,
            "pair_info": p.info,
            "best_known": [_number(b) for b in best],
            "best_source": source,
            "truth": None if p.truth is None else [_number(t) for t in p.truth],
            "summary": self.summary(),
            "records": self.records(),
            "time_to_quality": self.time_to_quality(),
        }


def resolved_options(name: str, budget: Mapping) -> dict:
    """Every option a method runs with: its budget on top of the solver's defaults.

    For a registered solver, the public attributes of ``make_solver(name, **budget)``;
    for stochman, ``max_iter`` (stochman's own default when None).
    """
    if name == STOCHMAN:
        return {"max_iter": budget.get("max_iter") or STOCHMAN_ITERATIONS}
    solver = make_solver(name, **budget)
    return {k: v for k, v in vars(solver).items() if not k.startswith("_")}


def scaled_budget(name: str, budget: Mapping, option: str, factor: float) -> dict:
    """``budget`` with ``option`` set to factor x its resolved value (integers rounded, at least 1)."""
    options = resolved_options(name, budget)
    if option not in options:
        raise ValueError(f"{name!r} has no option {option!r}; it has {sorted(options)}")
    value = options[option]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"option {option!r} of {name!r} is not numeric ({value!r}); it cannot be scaled")
    value = max(1, round(value * factor)) if isinstance(value, int) else float(value * factor)
    return {**budget, option: value}


def default_budgets(quick: bool = False) -> dict[str, dict]:
    """A budget for every solver registered now but :data:`NOT_BENCHMARKED`, plus stochman (see :data:`BUDGETS`, :data:`QUICK_SCALE`)."""
    budgets = {name: dict(BUDGETS.get(name, {})) for name in [*SOLVERS, STOCHMAN] if name not in NOT_BENCHMARKED}
    if quick:
        for name, factors in QUICK_SCALE.items():
            if name in budgets:
                for option, factor in factors.items():
                    budgets[name] = scaled_budget(name, budgets[name], option, factor)
    return budgets


@dataclass(frozen=True)
class ExtraRow:
    """A head-to-head row beyond the one per method: ``method`` with ``budget``, named ``label``.

    ``setup_seconds`` (e.g. fitting the amortized solver's network) is added to
    the run's warm-up time in the table's setup column.
    """

    label: str
    method: str
    budget: Mapping = field(default_factory=dict)
    setup_seconds: float = 0.0


#: On trained models, whose manifolds hold latent codes, the default solver starts each pair from the
#: line or the graph path (its ``graph_start``); this row runs it from the straight line as well, so
#: that the head-to-head table also compares it where the other optimisers start.
LINE_START_ROW = ExtraRow("gauss_newton from the line", "gauss_newton", {"graph_start": False})


def run_benchmark(
    problem: Problem,
    budgets: Optional[Mapping[str, Mapping]] = None,
    ladders: Optional[Mapping[str, tuple[str, Sequence]]] = None,
    reference: Sequence[tuple[str, dict]] = REFERENCE_STEPS,
    grid: int = MEASURE_GRID,
    log: Log = None,
    extra_rows: Sequence[ExtraRow] = (),
) -> BenchmarkResult:
    """Benchmark every method of ``budgets`` on ``problem``.

    Args:
        budgets: method name (in SOLVERS, or 'stochman') -> declared options;
            default :func:`default_budgets` (every registered solver).
        ladders: method -> (option, growing factors) for time-to-quality;
            default :data:`LADDERS` restricted to the methods benchmarked. A
            step's options are the method's budget with that option scaled by
            the factor (:func:`scaled_budget`); a step equal to the budget
            reuses the head-to-head run.
        reference: the long-budget reference steps (empty: none).
        grid: points of the common dense grid.
        log: called with a line after every run.
        extra_rows: further head-to-head rows, run after the methods of ``budgets``
            (the amortized solver raw and refined, whose network belongs to the problem).
    """
    budgets = default_budgets() if budgets is None else {k: dict(v) for k, v in budgets.items()}
    unknown = sorted(set(budgets) - set(SOLVERS) - {STOCHMAN})
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid: {', '.join(sorted([*SOLVERS, STOCHMAN]))}")
    ladders = {k: v for k, v in (LADDERS if ladders is None else ladders).items() if k in budgets}
    for name, budget in [*budgets.items(), *reference, *((row.method, row.budget) for row in extra_rows)]:
        resolved_options(name, _merge(problem.solver_options.get(name, {}), budget, name))  # bad options raise now
    for name, (option, factors) in ladders.items():
        for factor in factors:
            scaled_budget(name, budgets[name], option, factor)
    say = log or (lambda line: None)

    def floored(make: Callable[[], SolverRun]) -> SolverRun:
        floor = measure_floor(problem, grid)
        run = make()
        run.floor = floor
        return run

    def done(run: SolverRun) -> SolverRun:
        say(
            f"{problem.name}: {run.label:<28} {run.seconds_per_pair:9.4f} s/pair "
            f"{run.floors_per_pair or float('nan'):8.1f} floors  median length "
            f"{run.length.median().item():.5g}  converged {int(run.converged.sum())}/{run.pairs}"
            + (f"  ({run.reasons[0]})" if np.isnan(run.seconds) else "")
        )
        return run

    runs = [done(floored(lambda: run_method(problem, name, budget, grid))) for name, budget in budgets.items()]
    for row in extra_rows:
        run = floored(lambda: run_method(problem, row.method, row.budget, grid, label=row.label))
        run.setup_seconds += row.setup_seconds
        runs.append(done(run))
    runs += [done(r) for r in run_reference(problem, reference, grid)] if reference else []
    head = {run.solver: run for run in runs if run.label == run.solver}  # not the reference's or extra rows
    ladder_runs: dict[str, list[SolverRun]] = {}
    for name, (option, factors) in ladders.items():
        steps = []
        for factor in factors:
            budget = scaled_budget(name, budgets[name], option, factor)
            if resolved_options(name, budget) == resolved_options(name, budgets[name]):
                steps.append(head[name])
                continue
            label = f"{name}@{option}={budget[option]:g}"
            steps.append(done(floored(lambda: run_method(problem, name, budget, grid, label=label))))
        ladder_runs[name] = steps
    return BenchmarkResult(problem, runs, ladder_runs)
