"""Benchmark outputs: benchmark.json, benchmark.md and the time-to-quality plot.

benchmark.json::

    {
      "settings": {
        "threads": torch.get_num_threads(), "torch": version, "stochman": version,
        "device": "cpu" | "cuda:0", "grid": dense grid points, "pairs": P, "seed": S,
        "quick": bool, "command": the command line, "seconds": total wall time,
        "budgets": {method: declared options}, "ladders": {method: [option, [factors]]},
        "reference": [[solver, options], ...],
        "reused": [names]                # `vaemanifold benchmark`: decoders reused from an earlier run
      },
      "models": [                        # one per decoder (trained model or analytic problem)
        {
          "name", "description", "latent_dim", "pairs", "pair_info": {...},
          "floor_seconds_per_pair": s,   # one dense length evaluation, measured in the same run
          "best_known": [B numbers],     # shortest dense length any run found, per pair
          "best_source": [B labels],     # the run that found it
          "truth": [B numbers] | null,   # analytic distances where known
          "summary": [                   # one row per method (head-to-head + reference runs)
            {"solver", "method", "budget", "options", "median_length_ratio", "p90_length_ratio",
             "frac_within_1pct", "median_seconds_per_pair", "floors_per_pair", "setup_seconds", "iterations",
             "evaluations_per_pair", "failures", "failure_example", "max_grid_change",
             ["median_error_vs_truth", "max_error_vs_truth"]}     # only with a truth
          ],
          "records": [                   # one per (method, pair)
            {"pair", "solver", "length", "energy", "length_ratio", "grid_change",
             "seconds_per_pair", "iterations", "evaluations", "converged", "reason"}
          ],
          "time_to_quality": {method: [{"label", "budget", "seconds_per_pair", "floors_per_pair", "iterations",
                                        "failures", "failure_example", "median_length_ratio",
                                        "p90_length_ratio", "frac_within_1pct"}, ...]},
          "resume_key": {"settings", "code", "files"}   # `vaemanifold benchmark`: what a re-run must match
        }
      ]
    }

Numbers that are NaN or infinite are written as null. ``seconds_per_pair`` is
the batched call's wall time divided by the number of pairs; ``floors_per_pair``
is that over the model's ``floor_seconds_per_pair``. ``budget`` is
what was declared, ``options`` every option the method ran with (the
solver's defaults included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

import stochman
import torch

from .benchmark import BEST_GRID_TOL, GRID_TOL, STOCHMAN, STOCHMAN_GRID, STOCHMAN_ITERATIONS, BenchmarkResult, jsonable
from .tables import markdown_table

#: Keys every summary row has (tests and readers rely on them).
SUMMARY_KEYS = (
    "solver",
    "median_length_ratio",
    "p90_length_ratio",
    "frac_within_1pct",
    "median_seconds_per_pair",
    "floors_per_pair",
    "failures",
)
#: Keys every per-pair record has.
RECORD_KEYS = (
    "pair",
    "solver",
    "length",
    "energy",
    "length_ratio",
    "grid_change",
    "seconds_per_pair",
    "iterations",
    "evaluations",
    "converged",
    "reason",
)
#: Keys of "settings".
SETTINGS_KEYS = ("threads", "torch", "stochman", "device", "grid", "pairs", "seed", "quick")


def settings(
    grid: int,
    pairs: int,
    seed: int,
    quick: bool,
    device: str,
    budgets: Mapping[str, Mapping],
    ladders: Mapping[str, tuple],
    reference: Sequence[tuple[str, dict]],
    **extra,
) -> dict:
    """The "settings" block of benchmark.json (``extra`` keys are added as given)."""
    return {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "stochman": getattr(stochman, "__version__", "unknown"),
        "device": device,
        "grid": grid,
        "pairs": pairs,
        "seed": seed,
        "quick": quick,
        "budgets": {k: jsonable(v) for k, v in budgets.items()},
        "ladders": {k: [option, list(values)] for k, (option, values) in ladders.items()},
        "reference": [[name, jsonable(options)] for name, options in reference],
        **extra,
    }


def to_json(results: Sequence[BenchmarkResult], settings_: dict) -> dict:
    return {"settings": settings_, "models": [r.to_dict() for r in results]}


def write_json(document: dict, path: Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    return path


def _budget_text(row: dict) -> str:
    if row["method"] == STOCHMAN and row["budget"].get("max_iter") is None:
        return f"as shipped (Adam lr 0.1, {STOCHMAN_ITERATIONS} it, {STOCHMAN_GRID}-pt grid)"
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["budget"].items()) or "defaults"


def _fmt(x: Optional[float], spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(document: dict) -> str:
    """benchmark.md: the settings and one table per model."""
    s = document["settings"]
    lines = [
        "# Geodesic solver benchmark",
        "",
        f"{s['pairs']} pairs per model (seed {s['seed']}), every curve measured on a {s['grid']}-point dense grid; "
        f"torch {s['torch']}, stochman {s['stochman']}, {s['threads']} thread(s), device {s['device']}"
        + (", --quick" if s["quick"] else "")
        + ".",
        "",
        "L/best: dense length over the best length any run found for the pair (reference and "
        "time-to-quality runs included). s/pair: batched wall time / pairs, after a warm-up on one pair "
        "(setup s: the warm-up call, e.g. building the graph). floors/pair: s/pair over the floor, the time of "
        "one dense length evaluation of the pairs' curves measured in the same run (seconds vary with the "
        "machine's load, floors much less). Failures: pairs not converged.",
    ]
    if s.get("reused"):
        lines += [
            "",
            f"Reused from an earlier run into this folder with the same settings, code and model files "
            f"(their times are that run's): {', '.join(s['reused'])}.",
        ]
    steps = " then ".join(f"{name} ({', '.join(f'{k}={v}' for k, v in options.items())})" for name, options in s["reference"])
    lines += ["", f"Reference run (each step starts from the previous step's curves): {steps or 'none'}."]
    if document["models"]:
        lines += ["", "Options each method ran with (problem-specific extras such as graph points aside):", ""]
        lines += [
            f"- {row['solver']}: " + (", ".join(f"{k}={v}" for k, v in row["options"].items()) or "(no options)")
            for row in document["models"][0]["summary"]
        ]
    for model in document["models"]:
        truth = model["truth"] is not None
        lines += ["", f"## {model['name']}", "", model["description"], ""]
        if model.get("floor_seconds_per_pair"):
            lines += [f"Floor: {model['floor_seconds_per_pair'] * 1e3:.2f} ms per pair.", ""]
        header = ["solver", "budget", "median L/best", "p90 L/best", "within 1%", "s/pair", "floors/pair", "setup s",
                  "iterations", "evals/pair", "failures"]
        if truth:
            header += ["median abs(L/truth-1)", "max abs(L/truth-1)"]
        rows = []
        for row in model["summary"]:
            cells = [
                row["solver"],
                _budget_text(row),
                _fmt(row["median_length_ratio"], ".5f"),
                _fmt(row["p90_length_ratio"], ".5f"),
                f"{row['frac_within_1pct']:.0%}",
                _fmt(row["median_seconds_per_pair"], ".4f"),
                _fmt(row.get("floors_per_pair"), ".1f"),
                _fmt(row["setup_seconds"], ".2f"),
                str(row["iterations"]),
                f"{row['evaluations_per_pair']:.0f}",
                f"{row['failures']}/{model['pairs']}",
            ]
            if truth:
                cells += [_fmt(row["median_error_vs_truth"], ".1e"), _fmt(row["max_error_vs_truth"], ".1e")]
            rows.append(cells)
        lines += markdown_table(header, rows)
        changes = [row["max_grid_change"] for row in model["summary"] if row["max_grid_change"] is not None]
        worst = max(changes) if changes else float("nan")
        lines += [
            "",
            f"Largest change of a length when the dense grid is doubled: {worst:.1e} "
            f"({'below' if worst < GRID_TOL else 'NOT below'} {GRID_TOL:.1%}; lengths that change by more than "
            f"{BEST_GRID_TOL:.0%} are left out of the best known).",
        ]
        sources: dict[str, int] = {}
        for label in model["best_source"]:
            sources[str(label)] = sources.get(str(label), 0) + 1
        lines.append("Best known found by: " + ", ".join(f"{k} ({v})" for k, v in sorted(sources.items())) + ".")
        examples = [(row["solver"], row["failure_example"]) for row in model["summary"] if row["failure_example"]]
        if examples:
            lines += ["", "Failure reasons (first per solver):", ""]
            lines += [f"- {name}: {reason}" for name, reason in examples]
        lines += ["", "Time to quality (each step a full run at that budget):", ""]
        lines += markdown_table(
            ("solver", "step", "floors/pair", "median L/best", "p90 L/best", "failures"),
            [
                (solver, s["label"], _fmt(s.get("floors_per_pair"), ".1f"), _fmt(s["median_length_ratio"], ".5f"),
                 _fmt(s["p90_length_ratio"], ".5f"), f"{s['failures']}/{model['pairs']}")
                for solver, steps in model["time_to_quality"].items()
                for s in steps
            ],
        )
        empty = [s for steps in model["time_to_quality"].values() for s in steps if s["median_length_ratio"] is None]
        if empty:
            lines += ["", "Time-to-quality steps without a finite length (left out of the plot):", ""]
            lines += [f"- {s['label']}: {s.get('failure_example') or 'no finite length'}" for s in empty]
    return "\n".join(lines) + "\n"


def plot_time_to_quality(document: dict, path: Path) -> Path:
    """PNG: per model, the median (top row) and 90th percentile (bottom row) of L/best - 1 against
    floors per pair (seconds per pair where a model has no floor), one curve per solver (log-log).

    Ratios of exactly 1 are drawn at 1e-8 (the bottom of the plot).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bottom = 1e-8
    models = document["models"]
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 8.0), squeeze=False)
    for column, model in enumerate(models):
        in_floors = bool(model.get("floor_seconds_per_pair"))
        x_key = "floors_per_pair" if in_floors else "seconds_per_pair"
        for ax, statistic, name in zip(axes[:, column], ("median_length_ratio", "p90_length_ratio"), ("median", "p90")):
            for solver, steps in model["time_to_quality"].items():
                pts = [
                    (s[x_key], max(s[statistic] - 1, bottom))
                    for s in steps
                    if s[statistic] is not None and (s.get(x_key) or 0) > 0
                ]
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, marker="o", label=solver)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{model['name']}: {name}")
            ax.set_xlabel("floors per pair (batched)" if in_floors else "seconds per pair (batched)")
            ax.set_ylabel(f"{name} length / best - 1 (floored at {bottom:g})")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"Time to quality ({document['settings']['threads']} thread(s), {document['settings']['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
