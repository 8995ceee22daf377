"""`vaemanifold cluster`: geodesic vs Euclidean clustering of MNIST digit sets (Arvanitidis et al. 2017).

Writes under --out: clustering.json (settings, sizes, timings, per-subset and
summary scores, distance validation, class means), clustering.md (our table
beside the paper's), and per digit set a figure of the clusterings
(clusters_<digits>.png) and of the class means (means_<digits>.png). The VAEs
are kept under --out/models/digits-<digits>/ and reused while their recipe is
unchanged; with --amortized so are the geodesic networks beside them, while
they fit their VAE.
"""

from __future__ import annotations

import argparse
import sys

from .. import data
from .._checks import check_output_folder
from ..evaluation import clustering as cl
from ..evaluation import clustering_experiment as ce
from .train import add_threads_argument, int_list, set_threads
from .arguments import non_negative_int, positive_int

NAME = "cluster"
HELP = "Replicate the geodesic-clustering table of 'Latent space oddity': k-medoids on geodesic vs Euclidean latent distances."

#: Settings of the full run and of --quick (command-line options override both).
FULL = {
    "subsets": 10, "subset_per_class": 200, "epochs": 100, "hidden": (256, 128), "validate_pairs": 24,
    "frechet_points": 32, "frechet_iterations": 10, "refine_iterations": 100,
}
QUICK = {
    "subsets": 3, "subset_per_class": 60, "epochs": 25, "hidden": (128, 64), "validate_pairs": 3,
    "frechet_points": 8, "frechet_iterations": 3, "refine_iterations": 30,
}
def digit_sets(text: str) -> tuple[tuple[int, ...], ...]:
    """'0,1,2:3,4,7' -> ((0, 1, 2), (3, 4, 7)), for argparse."""
    sets = tuple(int_list(part) for part in text.split(":") if part.strip())
    if not sets or any(len(s) < 2 for s in sets):
        raise argparse.ArgumentTypeError(f"expected ':'-separated sets of >= 2 comma-separated digits, got {text!r}")
    return sets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small models, 3 subsets of 60 per digit (a few minutes)")
    parser.add_argument("--root", default=None, help="torchvision-layout MNIST folder (then 1,000 images per digit)")
    parser.add_argument("--out", default="runs/cluster", help="output folder (default runs/cluster)")
    parser.add_argument("--sets", type=digit_sets, default=cl.DIGIT_SETS, help="digit sets, e.g. 0,1,2:3,4,7:5,6,9")
    parser.add_argument("--subsets", type=positive_int, default=None, help="random subsets per digit set (full 10, quick 3)")
    parser.add_argument("--subset-per-class", type=positive_int, default=None, help="codes per digit in a subset (full 200, quick 60)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="VAE phase-1 epochs (full 100, quick 25)")
    parser.add_argument("--k", type=positive_int, default=10, help="neighbours of the geodesic graph (default 10)")
    parser.add_argument("--restarts", type=positive_int, default=10, help="random starts of k-medoids / k-means (default 10)")
    parser.add_argument("--validate-pairs", type=non_negative_int, default=None, help="pairs checked against refined geodesics (0: skip)")
    parser.add_argument("--frechet-points", type=non_negative_int, default=None, help="codes per digit for the Fréchet mean (0: skip)")
    parser.add_argument(
        "--amortized", action="store_true",
        help="also cluster on geodesic distances of a geodesic network fitted per digit set (--network-seconds a set, "
             "then about 0.4 dense length evaluations a pair: --quick takes about 30 minutes on one core)",
    )
    parser.add_argument("--network-seconds", type=float, default=170.0, help="fitting budget of each network (default 170)")
    parser.add_argument("--check-pairs", type=positive_int, default=64,
                        help="pairs of each subset checked against Gauss-Newton geodesics with --amortized (default 64)")
    parser.add_argument("--retrain", action="store_true", help="retrain the VAEs (and networks) even when cached")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)


def _settings(args: argparse.Namespace) -> dict:
    base = dict(QUICK if args.quick else FULL)
    for key in ("subsets", "subset_per_class", "epochs", "validate_pairs", "frechet_points"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    if base["subsets"] < 1 or base["subset_per_class"] < 2 or base["epochs"] < 1:
        raise ValueError("--subsets must be >= 1, --subset-per-class >= 2 and --epochs >= 1")
    if base["validate_pairs"] < 0 or base["frechet_points"] < 0 or args.k < 1 or args.restarts < 1:
        raise ValueError("--validate-pairs and --frechet-points must be >= 0, --k and --restarts >= 1")
    if not args.network_seconds > 0:
        raise ValueError(f"--network-seconds must be positive, got {args.network_seconds}")
    base.update(quick=args.quick, k=args.k, restarts=args.restarts, seed=args.seed, root=args.root,
                amortized=args.amortized, network_seconds=args.network_seconds, check_pairs=args.check_pairs)
    base["sets"] = [list(s) for s in args.sets]
    base["per_class"] = ce.ROOT_PER_CLASS if args.root else None
    return base


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    settings = _settings(args)
    out = check_output_folder(args.out)
    for split in ("train", "test"):
        data.source("mnist", split, args.root)  # before any work: FileNotFoundError names where it looked
    _, table = ce.run_clustering(settings, args.sets, out, args.retrain, " ".join(sys.argv))
    print(table)
    return 0
