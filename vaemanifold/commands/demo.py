"""`vaemanifold demo`: the default model's latent space, its magnification factor, lines and geodesics."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..geodesic import connecting_geodesic
from ..plotting import plot_latent
from ..vae import pretrained
from ..vae.presets import DEFAULT_PRESET, PRESETS, cache_dir
from .train import add_threads_argument, set_threads

NAME = "demo"
HELP = (
    f"Train or reuse the default model ({DEFAULT_PRESET}), connect random pairs of training points by straight "
    "lines and geodesics, and draw them over the log magnification factor."
)
METHODS = ("linear", "neural", "spline")
CURVE_NAMES = {"linear": "straight line", "neural": "neural geodesic", "spline": "spline geodesic"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder of the figure (default runs/demo)")
    parser.add_argument("--cache", default=None, help="model cache (default $VAEMANIFOLD_CACHE or runs/models)")
    parser.add_argument("--retrain", action="store_true", help="train again even if the model is cached")
    parser.add_argument("--pairs", type=int, default=4, help="pairs of training points to connect (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of pairs")
    parser.add_argument("--resolution", type=int, default=200, help="heat-map cells per side (default 200)")
    parser.add_argument("--device", default=None, help="default: CUDA when present, else the CPU")
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
    out = Path(args.out)
    path = out / "latent.png"
    ax = plot_latent(
        manifold, labels=model.labels, curves=curves, path=path, resolution=args.resolution,
        title=f"{DEFAULT_PRESET}: latent means over the log magnification factor",
    )
    print(f"heat map ({args.resolution}x{args.resolution} log magnification): {ax.magnification_seconds:.2f} s")
    print(f"figure: {path}")
    print(f"total: {time.perf_counter() - start:.1f} s")
    return 0
