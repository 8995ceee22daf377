"""`vaemanifold interpolate`: straight lines vs geodesics as image interpolations (class crossings, smoothness).

Writes under --out: interpolation.json (settings, classifier, per-method
summaries and per-pair records), interpolation.md (the table), and per model
strips_<name>.png (decoded frames at equal metric arc length, one row per
method, for the first --show pairs) and latent_<name>.png (those curves over
the magnification factor).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._checks import check_output_folder
from ..evaluation import interpolation_experiment as ie
from ..evaluation.classifier import KINDS
from ..solvers import SOLVERS
from ..vae import PRESETS, load, pretrained
from .train import add_threads_argument, set_threads
from .arguments import at_least, positive_int

NAME = "interpolate"
HELP = "Decode straight lines and geodesics between test images: class crossings, smoothness, image strips."

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
    parser.add_argument("--pairs", type=positive_int, default=None, help=f"pairs per model (full {FULL_PAIRS})")
    parser.add_argument("--pairing", default="same-class", choices=tuple(ie.PAIRINGS),
                        help="both ends of one class (default), or of two classes, the class pairs taken in turn")
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


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    pairs = args.pairs or (QUICK_PAIRS if args.quick else FULL_PAIRS)
    if pairs < 1 or args.frames < 3 or args.strip_frames < 2 or not 0 <= args.show <= args.batch:
        raise ValueError("--pairs must be >= 1, --frames >= 3, --strip-frames >= 2 and 0 <= --show <= --batch")
    methods = _methods(args)
    out = check_output_folder(args.out)
    _, table = ie.run_interpolation_experiment(_models(args), args, methods, pairs, out, " ".join(sys.argv))
    print(table)
    return 0
