"""`vaemanifold interpolate`: straight lines vs geodesics as image interpolations (class crossings, smoothness).

Writes under --out: interpolation.json (settings, classifier, per-method
summaries and per-pair records), interpolation.md (the table), and per model
strips_<name>.png (decoded frames at equal metric arc length, one row per
method, for the first --show pairs) and latent_<name>.png (those curves over
the magnification factor).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from .. import data
from .._checks import check_output_folder
from ..evaluation import interpolation as ip
from ..evaluation.classifier import KINDS, train_classifier
from ..evaluation.clustering import as_json
from ..solvers import SOLVERS
from ..vae import PRESETS, load, pretrained
from .train import add_threads_argument, set_threads
from .arguments import at_least, positive_int

NAME = "interpolate"
HELP = "Decode straight lines and geodesics between same-class images: class crossings, smoothness, image strips."

#: Models used without --model.
DEFAULT_PRESETS = ("mnist-2d", "fashion-2d")
#: Solver options of the full run and of --quick (the Gauss-Newton solvers at their defaults).
FULL_METHODS = {
    "graph": {"k": 10, "refine": None}, "gauss_newton": {}, "spline": {}, "neural": {}, "ode": {"tol": 1e-3, "max_nodes": 500},
}
QUICK_METHODS = {"graph": {"k": 10, "refine": None}, "gauss_newton": {}, "spline": {}, "neural": {}}
FULL_PAIRS, QUICK_PAIRS = 200, 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="a model folder or file (default: presets mnist-2d and fashion-2d)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PAIRS} pairs, small solver budgets, no ODE solver")
    parser.add_argument("--pairs", type=positive_int, default=None, help=f"same-class pairs per model (full {FULL_PAIRS})")
    parser.add_argument("--out", default="runs/interpolate", help="output folder (default runs/interpolate)")
    parser.add_argument("--methods", default=None, help="comma-separated solvers besides the line (default graph,gauss_newton,spline,neural,ode)")
    parser.add_argument("--frames", type=at_least(2), default=32, help="frames per curve for the scores (default 32)")
    parser.add_argument("--strip-frames", type=at_least(2), default=10, help="frames per row of the PNG strips (default 10)")
    parser.add_argument("--show", type=positive_int, default=4, help="pairs drawn in the figures (default 4, at most --batch)")
    parser.add_argument("--batch", type=positive_int, default=20, help="pairs per solver call (default 20)")
    parser.add_argument("--classifier", default="mlp", choices=KINDS)
    parser.add_argument("--root", default=None, help="torchvision-layout data folder, tried before the offline sources")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)


def _methods(args: argparse.Namespace) -> dict:
    table = QUICK_METHODS if args.quick else FULL_METHODS
    if args.methods is None:
        return {name: dict(options) for name, options in table.items()}
    names = [m.strip() for m in args.methods.split(",") if m.strip() and m.strip() != "linear"]
    unknown = [m for m in names if m not in SOLVERS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid: {', '.join(sorted(SOLVERS))}")
    return {name: dict(table.get(name, FULL_METHODS.get(name, {}))) for name in names}


def _models(args: argparse.Namespace):
    if args.model is not None:
        return [(Path(args.model).stem if Path(args.model).is_file() else Path(args.model).name, load(args.model, "cpu"))]
    for name in DEFAULT_PRESETS:
        PRESETS[name].check_data(args.root)
    return [(name, pretrained(name, data_root=args.root, device="cpu", progress=False)) for name in DEFAULT_PRESETS]


def model_data(metadata: dict) -> tuple[str, object, object, int]:
    """(dataset, classes, per_class, split seed) of a model's training data, from its checkpoint metadata
    (presets keep them under ``recipe``, ``vaemanifold train`` at the top level; the split seed is the schedule's)."""
    info = metadata.get("recipe", metadata)
    if info.get("dataset") not in data.IMAGE_DATASETS:
        raise ValueError(
            f"the model's metadata names no image data set (dataset={info.get('dataset')!r}); "
            "interpolate needs the model's training images and their held-out test split"
        )
    return info["dataset"], info.get("classes"), info.get("per_class"), int((info.get("schedule") or {}).get("seed", 0))


def run_model(name: str, model, args: argparse.Namespace, methods: dict, pairs: int, out: Path) -> dict:
    """Classifier, pairs, every method, figures, summary for one model."""
    clock = time.perf_counter()
    dataset, classes, per_class, seed = model_data(model.metadata)
    X, y = data.load(dataset, "train", classes=classes, per_class=per_class, root=args.root, seed=seed)
    X_test, y_test = data.load(dataset, "test", classes=classes, root=args.root, seed=seed)
    classifier = train_classifier(X, y, X_test, y_test, kind=args.classifier, seed=args.seed)
    print(f"{name}: classifier ({args.classifier}) test accuracy {classifier.accuracy:.2%} on {len(y_test)} images", flush=True)

    model = model.double()  # geometry in float64
    manifold = model.manifold()
    first, second = ip.same_class_pairs(y_test, pairs, args.seed)
    with torch.no_grad():
        z0 = model.encode(X_test[first].double())[0]
        z1 = model.encode(X_test[second].double())[0]
    labels = y_test[first].numpy()

    def decode(z: torch.Tensor) -> torch.Tensor:
        return model.decode(z)[0]

    runs = ip.run_interpolation(manifold, decode, classifier, z0, z1, labels, methods, args.frames, args.batch, log=print)
    summary = ip.summarise(runs, labels)

    show = list(range(min(args.show, pairs)))
    strips = []
    for run in runs:
        points, _ = ip.equal_arc_frames(manifold, run.curves[0][: len(show)], args.strip_frames)
        with torch.no_grad():
            strips.append(decode(points))
    ip.strip_figure(
        runs, strips, show, labels, out / f"strips_{name}.png",
        title=f"{name}: decoded frames at equal metric arc length", side=int(round(X.shape[1] ** 0.5)),
    )
    if manifold.latent_dim == 2:
        from ..plotting import plot_latent

        light = copy.deepcopy(model).float().manifold()  # plotting's heat-map grid is float32
        curves = {run.method: run.points[show].float() for run in runs}
        plot_latent(light, light.latents, model.labels.cpu(), curves=curves, path=out / f"latent_{name}.png",
                    title=f"{name}: first {len(show)} pairs, all methods")
    records = [
        {
            "pair": p, "first": int(first[p]), "second": int(second[p]), "label": int(labels[p]),
            **{
                run.method: {
                    "converged": bool(run.converged[p]), "leaves_class": bool(run.leaves[p]),
                    "off_class_frames": float(run.off_class[p]), "step_cv": float(run.variation[p]),
                    "length": float(run.length[p]), "labels": run.predicted[p].tolist(),
                }
                for run in runs
            },
        }
        for p in range(pairs)
    ]
    return {
        "name": name, "dataset": dataset, "classes": classes, "data_source": data.source(dataset, "test", args.root),
        "test_images": len(y_test), "classifier": classifier.describe(), "summary": summary, "records": records,
        "seconds": time.perf_counter() - clock,
    }


def markdown(document: dict) -> str:
    s = document["settings"]
    lines = [
        "# Interpolation quality: straight lines vs geodesics",
        "",
        f"{s['pairs']} same-class pairs of held-out test images per model (posterior means); every curve cut into "
        f"{s['frames']} frames at equal metric arc length and decoded (mean images). *Leaves class*: some frame is "
        "labelled another class by the pixel classifier; counted over pairs whose two end frames are labelled correctly "
        "and on which the method converged (*counted*), the straight line on the same pairs beside it. *Step CV*: "
        "coefficient of variation of the distances between consecutive decoded frames (median over pairs).",
        "",
        "| model | classifier acc. | method | converged | counted | leaves class | line, same pairs | "
        "step CV | line step CV | length / line | s/pair |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    def num(x, spec=".3f"):
        return "–" if x is None else format(x, spec)

    for model in document["models"]:
        for method, m in model["summary"]["methods"].items():
            lines.append(
                f"| {model['name']} | {pct(model['classifier']['accuracy'])} | {method} | {m['converged']}/{m['pairs']} | "
                f"{m['counted']} | {pct(m['leaves_class'])} | {pct(m['line_leaves_class_same_pairs'])} | "
                f"{num(m['step_cv_median'])} | {num(m['line_step_cv_median_same_pairs'])} | "
                f"{num(m['length_over_line_median'])} | {m['seconds_per_pair']:.2f} |"
            )
    lines += ["", f"Total wall time {document['seconds']:.0f} s on {document['threads']} thread(s); command: `{document['command']}`", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    pairs = args.pairs or (QUICK_PAIRS if args.quick else FULL_PAIRS)
    if pairs < 1 or args.frames < 3 or args.strip_frames < 2 or not 0 <= args.show <= args.batch:
        raise ValueError("--pairs must be >= 1, --frames >= 3, --strip-frames >= 2 and 0 <= --show <= --batch")
    methods = _methods(args)
    out = check_output_folder(args.out)
    clock = time.perf_counter()
    models = [run_model(name, model, args, methods, pairs, out) for name, model in _models(args)]
    document = as_json({
        "settings": {"pairs": pairs, "frames": args.frames, "methods": methods, "quick": args.quick,
                     "classifier": args.classifier, "seed": args.seed},
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "seconds": time.perf_counter() - clock,
        "models": models,
    })
    (out / "interpolation.json").write_text(json.dumps(document, indent=1))
    table = markdown(document)
    (out / "interpolation.md").write_text(table)
    print(table)
    return 0
