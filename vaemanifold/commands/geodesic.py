"""`vaemanifold geodesic`: geodesics on an analytic decoder, every solver, one table."""

from __future__ import annotations

import argparse


from .. import analytic
from ..evaluation.benchmark import NOT_BENCHMARKED
from ..geodesic import connecting_geodesic
from ..solvers import SOLVERS
from .arguments import positive_int

NAME = "geodesic"
HELP = "Connect random pairs on the sphere chart with every solver and compare with the great-circle distance."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=positive_int, default=8, help="endpoint pairs (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        default=",".join(m for m in SOLVERS if m not in NOT_BENCHMARKED),
        help="comma-separated solver names (default: all but those needing a setup: " + ", ".join(NOT_BENCHMARKED) + ")",
    )


def run(args: argparse.Namespace) -> int:
    manifold = analytic.sphere_manifold(latents=analytic.sphere_grid())  # the graph solver's points
    z0, z1 = analytic.sphere_pairs(args.pairs, seed=args.seed)
    truth = analytic.great_circle_distance(z0, z1)
    print(f"{args.pairs} pairs on the unit sphere (spherical chart); truth = great-circle distance")
    methods = args.methods.split(",")
    width = max(len(m) for m in [*methods, "method"])
    print(f"{'method':<{width}} {'max |L/truth - 1|':>18} {'converged':>10} {'s/pair':>8}")
    for method in methods:
        # a chart grid is anisotropic in the metric: the graph needs more neighbours than its default
        options = {"k": 24} if method == "graph" else {}
        result = connecting_geodesic(manifold, z0, z1, method=method, **options)
        error = (result.length / truth - 1).abs().max().item()
        print(
            f"{method:<{width}} {error:>18.2e} {int(result.converged.sum()):>5}/{len(result):<4} "
            f"{result.seconds / len(result):>8.3f}"
        )
    return 0
