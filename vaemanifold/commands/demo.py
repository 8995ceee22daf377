"""`vaemanifold demo`: the main job.

Trains or reuses the default model, connects pairs of training points with
straight lines and geodesics, and writes a report under ``--out``:
``latent.png`` (the latent space over the log magnification factor, curves
on top), ``strips.png`` (decoded images at equal metric arc length along each
curve), a quick benchmark of every solver on held-out pairs of the same model
(``benchmark.json``, ``benchmark.md``, ``time_to_quality.png``) and
``report.md`` tying them together.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .._checks import check_output_folder
from ..evaluation import benchmark as bm
from ..evaluation import problems as pb
from ..evaluation import report
from ..evaluation.interpolation import equal_arc_frames
from ..evaluation.tables import markdown_table
from ..geodesic import MEASURE_GRID, connecting_geodesic
from ..plotting import plot_image_strips, plot_latent
from ..vae import pretrained
from ..vae.presets import DEFAULT_PRESET, PRESETS, cache_dir
from .benchmark import _write as write_benchmark
from .train import add_threads_argument, set_threads
from .arguments import at_least, positive_int

NAME = "demo"
HELP = (
    f"Train or reuse the default model ({DEFAULT_PRESET}), connect random pairs of training points by straight "
    "lines and geodesics, and draw them over the log magnification factor."
)
METHODS = ("linear", "gauss_newton", "neural", "spline")
CURVE_NAMES = {
    "linear": "straight line",
    "gauss_newton": "default geodesic",
    "neural": "neural geodesic",
    "spline": "spline geodesic",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder of the report (default runs/demo)")
    parser.add_argument("--cache", default=None, help="model cache (default $VAEMANIFOLD_CACHE or runs/models)")
    parser.add_argument("--retrain", action="store_true", help="train again even if the model is cached")
    parser.add_argument("--pairs", type=positive_int, default=4, help="pairs of training points to connect (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of pairs")
    parser.add_argument("--resolution", type=at_least(2), default=200, help="heat-map cells per side (default 200)")
    parser.add_argument("--device", default=None, help="default: CUDA when present, else the CPU")
    parser.add_argument("--frames", type=at_least(2), default=10, help="decoded frames per curve in strips.png (default 10)")
    parser.add_argument("--no-benchmark", action="store_true", help="skip the quick solver benchmark")
    add_threads_argument(parser)


def choose_pairs(labels: torch.Tensor, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (pairs,), (pairs,) of training points from different classes (seeded).

    Each pair joins a different pair of classes (drawn at random, repeating
    only once all are used), with a random point of each class.
    """
    if pairs < 1:
        raise ValueError(f"--pairs must be >= 1, got {pairs}")
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    classes = labels.unique()
    if len(classes) < 2:
        raise ValueError("the training data have a single class; no pairs of different classes to connect")
    combos = torch.combinations(classes, 2)
    combos = combos[torch.randperm(len(combos), generator=generator)].repeat(-(-pairs // len(combos)), 1)[:pairs]
    first, second = [], []
    for a, b in combos.tolist():
        for label, out in ((a, first), (b, second)):
            members = (labels == label).nonzero().flatten()
            out.append(members[torch.randint(len(members), (1,), generator=generator)])
    return torch.cat(first), torch.cat(second)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    out = check_output_folder(args.out)
    start = time.perf_counter()
    print(f"model: {DEFAULT_PRESET} ({PRESETS[DEFAULT_PRESET].description}), cache {cache_dir(DEFAULT_PRESET, args.cache)}")
    model = pretrained(DEFAULT_PRESET, cache=args.cache, retrain=args.retrain, device=args.device)
    meta = model.metadata
    if meta.get("loaded_from"):
        print(f"loaded {meta['loaded_from']}")
    else:
        print(f"trained in {meta['seconds']['total']:.1f} s")
    summary = meta["summary"]
    print(
        f"ELBO {summary['elbo']:.1f} nats/image, reconstruction RMSE {summary['recon_rmse']:.4f}, "
        f"sigma(far)/sigma(data) {summary['sigma_ratio']:.1f}"
    )

    manifold = model.manifold()
    i, j = choose_pairs(model.labels, args.pairs, args.seed)
    z0, z1 = manifold.latents[i], manifold.latents[j]
    results = {method: connecting_geodesic(manifold, z0, z1, method=method) for method in METHODS}
    print(f"{'pair':>4} {'classes':>8} " + " ".join(f"{CURVE_NAMES[m]:>17}" for m in METHODS))
    for b in range(args.pairs):
        cells = []
        for method in METHODS:
            r = results[method]
            cells.append(f"{r.length[b].item():>15.2f}{' ' if r.converged[b] else '*'} ")
        print(f"{b:>4} {model.labels[i[b]].item():>3} -> {model.labels[j[b]].item():<2} " + " ".join(cells))
    print("lengths on the common 512-point grid; * = the solver did not converge (its reason below)")
    for method in METHODS:
        r = results[method]
        reasons = sorted({reason for reason in r.reasons if reason})
        print(f"  {method}: {int(r.converged.sum())}/{len(r)} converged in {r.seconds:.1f} s"
              + (f"; {'; '.join(reasons)}" if reasons else ""))

    curves = {}
    for method in METHODS:
        r = results[method]
        status = "" if method == "linear" else f" ({int(r.converged.sum())}/{len(r)} converged)"
        curves[CURVE_NAMES[method] + status] = r.curve
    path = out / "latent.png"
    ax = plot_latent(
        manifold, labels=model.labels, curves=curves, path=path, resolution=args.resolution,
        title=f"{DEFAULT_PRESET}: latent means over the log magnification factor",
    )
    print(f"heat map ({args.resolution}x{args.resolution} log magnification): {ax.magnification_seconds:.2f} s")
    print(f"figure: {path}")

    strips = {}
    for method in METHODS:
        points, _ = equal_arc_frames(manifold, results[method].curve, args.frames)
        with torch.no_grad():
            strips[CURVE_NAMES[method]] = model.decode(points)[0]
    titles = [f"pair {b}: {model.labels[i[b]].item()} -> {model.labels[j[b]].item()}" for b in range(args.pairs)]
    plot_image_strips(strips, out / "strips.png", titles)
    print(f"decoded strips: {out / 'strips.png'}")

    table = "(skipped: --no-benchmark)"
    if not args.no_benchmark:
        table = quick_benchmark(model, args, out)
    write_report(out, model, results, table, time.perf_counter() - start)
    print(f"report: {out / 'report.md'}")
    print(f"total: {time.perf_counter() - start:.1f} s")
    return 0


def quick_benchmark(model, args: argparse.Namespace, out: Path) -> str:
    """Every registered solver and stochman's baseline on held-out pairs (--quick budgets); the markdown table."""
    problem = pb.model_problem(model, DEFAULT_PRESET, args.pairs, args.seed)
    budgets, ladders = bm.default_budgets(quick=True), bm.QUICK_LADDERS
    result = bm.run_benchmark(problem, budgets, ladders, reference=(), log=lambda line: print(line, flush=True))
    settings = report.settings(
        MEASURE_GRID, args.pairs, args.seed, True, str(model.device), budgets, ladders, (), command="vaemanifold demo"
    )
    text = write_benchmark(out, [result.to_dict()], settings)
    return text.split("\n## ", 1)[-1]


def write_report(out: Path, model, results: dict, table: str, seconds: float) -> None:
    """report.md: the model, the figures, the lengths, the benchmark table."""
    summary = model.metadata["summary"]
    lines = [
        f"# vaemanifold demo: {DEFAULT_PRESET}",
        "",
        f"Model: {PRESETS[DEFAULT_PRESET].description}. ELBO {summary['elbo']:.1f} nats/image, reconstruction "
        f"RMSE {summary['recon_rmse']:.4f}, sigma(far)/sigma(data) {summary['sigma_ratio']:.1f}.",
        "",
        "## Latent space",
        "",
        "![latent space](latent.png)",
        "",
        *markdown_table(
            ("method", "median length", "converged", "seconds"),
            [(m, f"{r.length.median().item():.2f}", f"{int(r.converged.sum())}/{len(r)}", f"{r.seconds:.1f}")
             for m, r in results.items()],
        ),
        "",
        "## Decoded interpolations (equal metric arc-length steps)",
        "",
        "![strips](strips.png)",
        "",
        "## Quick solver benchmark (held-out pairs)",
        "",
        "## " + table if not table.startswith("(") else table,
        "",
        "![time to quality](time_to_quality.png)",
        "",
        f"Total {seconds:.0f} s on {torch.get_num_threads()} thread(s); command: `vaemanifold demo --out {out}`.",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
