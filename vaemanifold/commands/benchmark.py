"""`vaemanifold benchmark`: every geodesic solver head to head, one table per decoder.

Writes benchmark.json (schema: :mod:`vaemanifold.evaluation.report`),
benchmark.md and time_to_quality.png under ``--out``, after every decoder.
Run again into the same folder after an interruption, it reuses the decoders
already finished there with the same settings, code and model (and network)
files (:func:`resume_key`), and benchmarks only the others.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..amortized import NETWORK_FILE, GeodesicNetwork
from ..evaluation import benchmark as bm
from ..evaluation.amortization import AMORTIZED_ROWS
from ..evaluation import problems as pb
from ..evaluation import report
from .._checks import check_output_folder
from .._files import package_sha256, sha256_of
from ..geodesic import MEASURE_GRID
from ..solvers import SOLVERS
from .arguments import at_least, positive_int

NAME = "benchmark"
HELP = (
    "Benchmark every registered geodesic solver and stochman's stock one on the same pairs: "
    "length ratio to the best known, seconds per pair, failures, time to quality."
)
#: Default pairs per decoder: analytic (issue-2 table), trained models, trained models with --quick.
ANALYTIC_PAIRS, MODEL_PAIRS, QUICK_PAIRS = 16, 16, 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        action="append",
        metavar="DIR",
        help="a saved model (folder with model.pt, or the file); repeat for several "
        "(default: the presets mnist-2d, mnist-8d and fashion-2d, trained once or read from their cache)",
    )
    source.add_argument(
        "--analytic",
        action="store_true",
        help="no training: the sphere chart (vs great circles) and random tanh-MLP decoders with d=2 and d=8",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller budgets and ladders, no reference run, fewer pairs"
    )
    parser.add_argument(
        "--pairs",
        type=positive_int,
        default=None,
        help=f"pairs per decoder (default {ANALYTIC_PAIRS} analytic, {MODEL_PAIRS} per model, {QUICK_PAIRS} with --quick)",
    )
    parser.add_argument("--root", default=None, help="torchvision-layout data folder for the held-out images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs (default 0)")
    parser.add_argument(
        "--out",
        default="runs/benchmark",
        help="output folder (default runs/benchmark); the same command run again resumes: decoders finished "
        "there with the same settings, code and model files are reused",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of the registered solvers and '{bm.STOCHMAN}' (default: all of them)",
    )
    parser.add_argument(
        "--amortized",
        action="store_true",
        help=f"also the rows {' and '.join(repr(label) for label in AMORTIZED_ROWS)} with the geodesic network "
        f"saved beside each model ({NETWORK_FILE}, from `vaemanifold amortize`), its fit time as setup",
    )
    parser.add_argument("--grid", type=at_least(2), default=MEASURE_GRID, help=f"dense measuring grid (default {MEASURE_GRID})")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--no-ladders", action="store_true", help="skip the time-to-quality ladders")
    parser.add_argument("--no-reference", action="store_true", help="skip the long-budget reference runs")
    parser.add_argument(
        "--reference-steps",
        type=positive_int,
        default=None,
        help=f"run only the first N steps of the reference chain ({' then '.join(n for n, _ in bm.REFERENCE_STEPS)}; "
        "1 skips the ODE step, which costs hours at d = 32)",
    )


def _budgets(args: argparse.Namespace) -> dict[str, dict]:
    budgets = bm.default_budgets(args.quick)
    if args.methods is None:
        return budgets
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in budgets]
    if unknown or not names:
        raise ValueError(f"unknown methods {unknown or args.methods!r}; valid: {', '.join([*SOLVERS, bm.STOCHMAN])}")
    return {m: budgets[m] for m in names}


def _problems(
    args: argparse.Namespace, budgets: dict[str, dict]
) -> list[tuple[pb.Problem, list[bm.ExtraRow], tuple[Path, ...]]]:
    """The problems, each with its extra rows (on trained models the default solver from the straight line,
    :data:`~vaemanifold.evaluation.benchmark.LINE_START_ROW`, where it is benchmarked, and the amortized
    rows with --amortized) and the files its results depend on (the model, and its network with
    --amortized; none for the analytic decoders)."""
    if args.analytic:
        if args.amortized:
            raise ValueError("--amortized needs trained models (a network fitted beside each), not --analytic")
        pairs = args.pairs or (QUICK_PAIRS if args.quick else ANALYTIC_PAIRS)
        return [(p, [], ()) for p in pb.analytic_problems(pairs, args.seed)]
    from ..vae import PRESETS, load, pretrained
    from ..vae.model import MODEL_FILE
    from ..vae.presets import BENCHMARK_PRESETS, cache_dir

    pairs = args.pairs or (QUICK_PAIRS if args.quick else MODEL_PAIRS)
    if args.model:
        files = [Path(path) / MODEL_FILE if Path(path).is_dir() else Path(path) for path in args.model]
    else:
        for name in BENCHMARK_PRESETS:
            PRESETS[name].check_data(args.root)
        files = [cache_dir(name) / MODEL_FILE for name in BENCHMARK_PRESETS]
    # before any loading or training: a missing network stops the run here
    networks = [_network_of(file.parent) for file in files] if args.amortized else [None] * len(files)
    if args.model:
        models = []
        for path in args.model:
            model = load(path)
            models.append((model.metadata.get("preset") or Path(path).resolve().name, model))
    else:
        models = [(name, pretrained(name, data_root=args.root)) for name in BENCHMARK_PRESETS]
    out = []
    for (name, model), amortized, file in zip(models, networks, files):
        problem = pb.model_problem(model, name, pairs, args.seed, args.root)
        rows = [bm.LINE_START_ROW] if bm.LINE_START_ROW.method in budgets else []
        if amortized is not None:
            network, fit_seconds = amortized
            problem.solver_options["amortized"] = {"network": network}
            rows += [bm.ExtraRow(label, method, budget, fit_seconds) for label, (method, budget) in AMORTIZED_ROWS.items()]
        out.append((problem, rows, (file, file.parent / NETWORK_FILE) if amortized is not None else (file,)))
    return out


def _network_of(folder: Path) -> tuple[GeodesicNetwork, float]:
    """The geodesic network saved beside a model and its fit time (from its .json; 0 when there is none)."""
    file = folder / NETWORK_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no geodesic network at {file}: run `vaemanifold amortize --model {folder}` first")
    network = GeodesicNetwork.load(file)
    record = file.with_suffix(".json")
    fit_seconds = json.loads(record.read_text()).get("fit_seconds") if record.is_file() else None
    if fit_seconds is None:
        print(f"note: no fit time recorded beside {file}; its rows' setup shows the warm-up only")
    return network, float(fit_seconds or 0.0)


def resume_key(settings: dict, files: tuple[Path, ...]) -> dict:
    """What a decoder's results depend on: the run's settings (all but its duration and the decoders
    it reused), this package's code, and the bytes of the decoder's files (model, network)."""
    return {
        "settings": {k: v for k, v in settings.items() if k not in ("seconds", "reused")},
        "code": package_sha256(),
        "files": [sha256_of(file) for file in files],
    }


def _finished(out: Path) -> dict[str, dict]:
    """The decoders already in ``out``/benchmark.json (by name), or none when there is no readable file."""
    try:
        document = json.loads((out / "benchmark.json").read_text())
        return {model["name"]: model for model in document["models"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write(out: Path, models: list[dict], settings: dict) -> str:
    """Write benchmark.json, benchmark.md and time_to_quality.png; returns the markdown."""
    document = {"settings": settings, "models": models}
    report.write_json(document, out / "benchmark.json")
    text = report.markdown(document)
    (out / "benchmark.md").write_text(text)
    report.plot_time_to_quality(document, out / "time_to_quality.png")
    return text


def run(args: argparse.Namespace) -> int:
    if args.pairs is not None and args.pairs < 1:
        raise ValueError(f"--pairs must be >= 1, got {args.pairs}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    budgets = _budgets(args)
    ladders = {} if args.no_ladders else (bm.QUICK_LADDERS if args.quick else bm.LADDERS)
    ladders = {k: v for k, v in ladders.items() if k in budgets}
    reference = () if args.no_reference or args.quick else bm.REFERENCE_STEPS[: args.reference_steps]
    out = check_output_folder(args.out)
    problems = _problems(args, budgets)
    settings = report.settings(
        args.grid,
        problems[0][0].pairs,
        args.seed,
        args.quick,
        str(bm.device_of(problems[0][0].manifold)),
        budgets,
        ladders,
        reference,
        arguments={k: v for k, v in vars(args).items() if k not in ("run", "command")},
    )
    finished = _finished(out)
    settings["reused"] = []
    models: list[dict] = []
    for problem, extra_rows, files in problems:  # the output files are rewritten after every decoder
        key = resume_key(settings, files)
        earlier = finished.get(problem.name)
        if earlier is not None and earlier.get("resume_key") == key:
            print(f"{problem.name}: reusing its finished run in {out / 'benchmark.json'} (same settings, code, files)")
            settings["reused"].append(problem.name)
            models.append(earlier)
        else:
            result = bm.run_benchmark(
                problem, budgets, ladders, reference, args.grid, log=lambda line: print(line, flush=True),
                extra_rows=extra_rows,
            )
            models.append({**result.to_dict(), "resume_key": key})
        settings["seconds"] = time.perf_counter() - start
        text = _write(out, models, settings)
    print(text)
    print(
        f"wrote {out / 'benchmark.json'}, {out / 'benchmark.md'}, {out / 'time_to_quality.png'} "
        f"in {time.perf_counter() - start:.1f} s ({torch.get_num_threads()} threads)"
    )
    return 0
