"""How good is a fitted geodesic network? Its curves, raw and refined, against per-pair geodesics.

On a problem's held-out pairs (never used in fitting), with the floor measured
in the same run: the amortized solver as it is, the same refined
(``refine=True``), and the default solver from the straight line; the best
known length per pair is the shortest over those runs and a tighter
Gauss-Newton reference (128 segments, tol 1e-6) that the dense grid resolves
(:func:`vaemanifold.evaluation.benchmark.best_known`).
"""

from __future__ import annotations

from typing import Optional

from . import benchmark as bm
from .problems import Problem
from .tables import markdown_table

#: The amortized solver's rows (here and in ``vaemanifold benchmark --amortized``): label -> (method, budget).
#: The network is added as the problem's own option.
AMORTIZED_ROWS: dict[str, tuple[str, dict]] = {
    "amortized": ("amortized", {}),
    "amortized + refine": ("amortized", {"refine": True}),
}
#: The runs: the amortized rows and the default solver from the straight line.
RUNS: dict[str, tuple[str, dict]] = {**AMORTIZED_ROWS, "gauss_newton (cold)": ("gauss_newton", {})}
REFERENCE = ("gauss_newton", {"levels": (16, 32, 64, 128), "tol": 1e-6, "extra_levels": 0})


def evaluate_network(problem: Problem, network, fit_seconds: float, runs: Optional[dict] = None) -> dict:
    """Rows (label, ratio statistics, floors per pair, failures) for :data:`RUNS` on ``problem``'s pairs.

    ``runs``: other runs instead, label -> (method, budget), the network added to the amortized ones;
    the best known length per pair is the shortest over all of them and the reference.

    Returns a JSON-safe dict: ``rows``, ``floor_seconds_per_pair``, ``fit_seconds``, ``pairs``.
    """
    extra = {"network": network}
    measured = []
    for label, (method, budget) in (RUNS if runs is None else runs).items():
        floor = bm.measure_floor(problem)
        run = bm.run_solver(
            problem.manifold, problem.z0, problem.z1, method, budget, extra if method == "amortized" else {}, label=label
        )
        run.floor = floor
        measured.append(run)
    reference = bm.run_solver(problem.manifold, problem.z0, problem.z1, *REFERENCE, warmup=False, label="reference")
    best, _ = bm.best_known([*measured, reference])
    rows = []
    for run in measured:
        row = bm.summarize(run, best)
        rows.append({k: row[k] for k in ("solver", "median_length_ratio", "p90_length_ratio", "floors_per_pair", "failures")}
                    | {"max_length_ratio": float((run.length / best).max())})
    return {"pairs": problem.pairs, "floor_seconds_per_pair": measured[0].floor, "fit_seconds": fit_seconds, "rows": rows}


def markdown(result: dict) -> str:
    """The rows of :func:`evaluate_network` as a markdown table."""
    rows = [
        (r["solver"], f"{r['median_length_ratio']:.4f}", f"{r['p90_length_ratio']:.4f}", f"{r['max_length_ratio']:.4f}",
         f"{r['floors_per_pair']:.2f}", f"{r['failures']}/{result['pairs']}")
        for r in result["rows"]
    ]
    header = ("method", "median L/best", "p90 L/best", "max L/best", "floors/pair", "not converged")
    return "\n".join(markdown_table(header, rows))
