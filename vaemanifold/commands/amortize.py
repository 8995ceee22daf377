"""`vaemanifold amortize`: fit one geodesic network for a model's latent space, save it beside the model, measure it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .._files import atomic_write
from ..amortized import NETWORK_FILE, GeodesicNetwork
from .arguments import non_negative_int, positive_int

NAME = "amortize"
HELP = (
    "Fit a geodesic network (one for every pair) to a model's latent space, save it beside the model, "
    "and measure it on held-out pairs against per-pair geodesics."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a saved model folder (model.pt inside)")
    parser.add_argument("--seconds", type=float, default=170.0, help="fitting budget in seconds (default 170)")
    parser.add_argument("--distill", type=non_negative_int, default=2048, help="most Gauss-Newton geodesics to distil (default 2048)")
    parser.add_argument(
        "--heads", type=positive_int, default=1, help="curves per pair, the shortest chosen per pair (default 1)"
    )
    parser.add_argument("--energy-steps", type=non_negative_int, default=0, help="curve-energy steps after distilling (default 0)")
    parser.add_argument("--pairs", type=positive_int, default=48, help="held-out pairs measured (default 48)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fit and of the held-out pairs (default 0)")
    parser.add_argument("--root", default=None, help="torchvision-layout data folder for the held-out images")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's own)")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.amortization import evaluate_network, markdown
    from ..evaluation.problems import model_problem
    from ..vae import load

    if not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    folder = Path(args.model)
    model = load(folder)
    if not len(model.latents):
        raise ValueError(f"the model in {folder} holds no training codes to fit between")
    manifold = model.manifold()
    start = time.perf_counter()
    network = GeodesicNetwork.fit(
        manifold, model.latents, seconds=args.seconds, distill=args.distill, energy_steps=args.energy_steps, seed=args.seed,
        heads=args.heads,
    )
    fit_seconds = time.perf_counter() - start
    path = network.save((folder if folder.is_dir() else folder.parent) / NETWORK_FILE)
    print(f"fitted in {fit_seconds:.1f} s ({torch.get_num_threads()} threads); saved {path}")
    problem = model_problem(model, folder.resolve().name, args.pairs, args.seed, args.root)
    result = evaluate_network(problem, network, fit_seconds)
    result["threads"] = torch.get_num_threads()
    result["settings"] = {k: v for k, v in vars(args).items() if k not in ("run", "command")}
    text = markdown(result)
    atomic_write(path.with_suffix(".json"), lambda stream: stream.write(json.dumps(result, indent=2).encode()))
    print(f"{problem.pairs} held-out pairs ({problem.description}); floor {result['floor_seconds_per_pair'] * 1e3:.2f} ms a pair")
    print(text)
    return 0
