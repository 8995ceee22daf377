"""`vaemanifold distances`: a geodesic distance matrix, here or on Dask workers, resumable.

Finished blocks are saved as they complete (:mod:`vaemanifold.distance_store`);
the same command run again after an interruption solves only the blocks that
were not saved. ``--workers K`` starts a local Dask cluster of K processes;
``--scheduler ADDRESS`` uses a running one (``dask scheduler`` / ``dask worker``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from .. import analytic
from .._files import package_sha256, sha256_of
from ..amortized import NETWORK_FILE, GeodesicNetwork
from ..distance_store import DistanceStore
from ..distances import BATCHES_PER_BLOCK, block_results, grid_cost, reference_check
from ..geodesic import MEASURE_GRID, _dtype_of
from ..manifold import DecoderManifold
from ..solvers import DEFAULT_METHOD, SOLVERS, make_solver
from ..solvers.amortized import LIGHT_REFINE
from .arguments import at_least, non_negative_int, positive_int

NAME = "distances"
HELP = "Geodesic distances between N latent codes (distances.npy), on local or remote Dask workers; resumable."
#: Decoders with no training, for trying the command and for tests: name -> latent dimension.
ANALYTIC = {"sphere": 2, "mlp-2d": 2, "mlp-8d": 8}
#: --refine choices and the amortized solver's options they stand for.
REFINEMENTS = {"full": {"refine": True}, "light": {"refine": True, "refine_options": LIGHT_REFINE}}
#: Default number of codes.
DEFAULT_POINTS = 100
#: Pairs on which the cost of a coarser --grid is measured and printed.
GRID_SAMPLE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="DIR", help="a saved model (folder with model.pt, or the file)")
    source.add_argument(
        "--analytic",
        choices=sorted(ANALYTIC),
        help="no model: the sphere chart or a random tanh-MLP decoder (vaemanifold.analytic)",
    )
    codes = parser.add_mutually_exclusive_group()
    codes.add_argument(
        "--points",
        type=at_least(2),
        default=None,
        help=f"N codes drawn with --seed: the model's training codes, or random chart points (default {DEFAULT_POINTS})",
    )
    codes.add_argument("--codes", metavar="FILE", help="an (N, d) .npy file of latent codes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn codes (default 0)")
    parser.add_argument("--out", required=True, help="output folder; run the same command again to resume")
    parser.add_argument(
        "--method", default=DEFAULT_METHOD, choices=sorted(SOLVERS), help=f"solver (default {DEFAULT_METHOD})"
    )
    parser.add_argument(
        "--network",
        metavar="FILE",
        default=None,
        help=f"--method amortized: the fitted geodesic network (default: {NETWORK_FILE} beside --model)",
    )
    parser.add_argument(
        "--refine",
        nargs="?",
        const="full",
        choices=tuple(REFINEMENTS),
        default=None,
        help="--method amortized: refine its curves: 'full' (the default when given: refine=True) or 'light' "
        "(refine=True with LIGHT_REFINE: two Gauss-Newton steps on 16 segments, for large matrices)",
    )
    parser.add_argument(
        "--grid",
        type=at_least(2),
        default=MEASURE_GRID,
        help=f"points each curve is measured on (default {MEASURE_GRID}); a coarser grid's cost is printed first",
    )
    parser.add_argument(
        "--check-pairs",
        type=non_negative_int,
        default=0,
        help=f"at the end, compare N sampled entries with {DEFAULT_METHOD} geodesics on the dense grid "
        "(ratio and Spearman, in run.json; default 0: no check)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="pairs per solver call (default 64)")
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=None,
        help=f"pairs per saved block, one task each (default {BATCHES_PER_BLOCK} x --batch-size)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, help="start a local Dask cluster of K worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads here, or per local worker (default 1)",
    )


def _source(args: argparse.Namespace) -> tuple[DecoderManifold, torch.Tensor, dict]:
    """The manifold, the candidate codes to draw from (or None) and the source's settings."""
    if args.analytic:
        d = ANALYTIC[args.analytic]
        if args.analytic == "sphere":
            return analytic.sphere_manifold(), None, {"analytic": "sphere"}
        return analytic.random_mlp_manifold(d, dtype=torch.float64), None, {"analytic": args.analytic}
    from ..vae import load

    path = Path(args.model)
    file = path / "model.pt" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no model at {args.model} (expected a folder with model.pt, or the file)")
    model = load(file)
    manifold = model.manifold()
    if manifold.latents is None:
        raise ValueError(f"the model at {args.model} has no training codes; pass --codes")
    return manifold, manifold.latents, {"model": str(file.resolve()), "model_sha256": sha256_of(file)}


def _codes(args: argparse.Namespace, manifold: DecoderManifold, pool: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """The (N, d) codes and how they were chosen."""
    if args.codes:
        file = Path(args.codes)
        if not file.is_file():
            raise FileNotFoundError(f"no codes file {args.codes}")
        Z = torch.as_tensor(np.load(file))
        if Z.dim() != 2 or len(Z) < 2:
            raise ValueError(f"--codes must hold an (N, d) array with N >= 2, got shape {tuple(Z.shape)}")
        return Z, {"codes": str(file.resolve()), "codes_sha256": sha256_of(file)}
    n = args.points or DEFAULT_POINTS
    g = torch.Generator().manual_seed(args.seed)
    if pool is not None:
        if n > len(pool):
            raise ValueError(f"--points {n}: the model has {len(pool)} training codes")
        Z = pool[torch.randperm(len(pool), generator=g)[:n]].detach().cpu()
    elif args.analytic == "sphere":
        # theta away from the poles, |phi0 - phi1| < pi: no pair's great circle leaves the chart
        Z = torch.stack([0.6 + 1.9 * torch.rand(n, generator=g), 3 * torch.rand(n, generator=g) - 1.5], -1)
    else:
        Z = 2.0 * torch.randn(n, manifold.latent_dim, generator=g)
    return Z, {"codes": "drawn", "seed": args.seed}


def _solver_options(args: argparse.Namespace) -> tuple[dict, dict]:
    """The solver's options, and the settings that name them (the amortized solver's network file)."""
    if args.method != "amortized":
        if args.network or args.refine:
            raise ValueError("--network and --refine are options of --method amortized")
        return {}, {}
    if args.network is None and args.model is None:
        raise ValueError("--method amortized needs --network FILE (or --model DIR with a fitted network beside it)")
    file = Path(args.network) if args.network else Path(args.model) / NETWORK_FILE
    network = GeodesicNetwork.load(file)
    return {"network": network, **REFINEMENTS.get(args.refine, {"refine": None})}, {
        "network": str(file.resolve()), "network_sha256": sha256_of(file), "refine": args.refine
    }


@contextlib.contextmanager
def _interrupt_after_block() -> Iterator[list]:
    """Within the block, a first Ctrl-C only marks the returned list (the caller stops after the block it
    is solving, once that is saved); a second one interrupts at once.

    Python raises KeyboardInterrupt wherever the main thread is, and where that is a finaliser (a
    ``__del__``, a weakref callback: torch and tqdm run some) the exception is printed and dropped, so
    the run would go on as if never interrupted. Outside the main thread signals cannot be handled, and
    Ctrl-C keeps its default behaviour.
    """
    interrupted: list = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_interrupt(signum, frame) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Optional[object]]:
    if args.workers is None and args.scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if args.scheduler:
        with Client(args.scheduler) as client:
            yield client
        return
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=args.threads, processes=True, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        yield client


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    manifold, pool, source = _source(args)
    Z, chosen = _codes(args, manifold, pool)
    Z = Z.to(_dtype_of(manifold, torch.float64))  # the decoder's dtype; float64 for a plain function
    manifold.check_points(Z, "codes")
    block_size = args.block_size or BATCHES_PER_BLOCK * args.batch_size
    options, chosen_solver = _solver_options(args)
    settings = {**source, **chosen, "method": args.method, **chosen_solver, "grid": args.grid, "batch_size": args.batch_size,
                "package_code_sha256": package_sha256()}  # blocks computed by other code are not mixed in
    store = DistanceStore.open(args.out, settings, Z.numpy(), block_size)
    todo = store.pending()
    saved = len(store.blocks) - len(todo)
    where = args.scheduler or (f"{args.workers} local workers" if args.workers else "this process")
    print(
        f"{len(Z)} codes, {store.blocks.pairs} pairs in {len(store.blocks)} blocks of {block_size}; "
        f"{saved} saved, {len(todo)} to solve on {where} ({args.threads} thread(s) each); method {args.method}"
    )
    solver = make_solver(args.method, **options)
    if args.grid != MEASURE_GRID and todo:
        cost = grid_cost(manifold, Z, args.grid, solver, sample=GRID_SAMPLE, seed=args.seed)
        print(
            f"measuring on {args.grid} points instead of {MEASURE_GRID}: |L{args.grid} / L{MEASURE_GRID} - 1| median "
            f"{cost.median().item():.2e}, max {cost.max().item():.2e} over {GRID_SAMPLE} sampled pairs"
        )
    solved = 0
    try:
        with _client(args) as client, _interrupt_after_block() as interrupted:
            start = time.perf_counter()  # after the cluster started: the time solving takes
            for result in block_results(
                manifold, Z, store.blocks, todo, solver, args.batch_size, client, progress=True, grid=args.grid
            ):
                store.save(result)
                solved += 1
                if interrupted and solved < len(todo):
                    raise KeyboardInterrupt
            seconds = time.perf_counter() - start
    except KeyboardInterrupt:
        print(
            f"interrupted: {saved + solved} of {len(store.blocks)} blocks saved in {args.out}; "
            "run the same command again to resume"
        )
        return 130
    summary = {"blocks_solved_this_run": solved, "blocks_saved_before": saved, "seconds_this_run": seconds,
               "where": where, "threads": args.threads}
    if args.check_pairs:
        summary["reference_check"] = check = reference_check(manifold, Z, store.distances, args.check_pairs, args.seed)
        ratio = check["ratio"]
        print(
            f"entries against {check['method']} geodesics on {check['pairs']} sampled pairs "
            f"({check['reference_converged']} converged): D / L_ref median {ratio.get('median', float('nan')):.4f}, "
            f"p90 {ratio.get('p90', float('nan')):.4f}, max {ratio.get('max', float('nan')):.4f}; "
            f"Spearman {check['spearman'] if check['spearman'] is not None else float('nan'):.4f}"
        )
    document = store.finish(summary)
    print(
        f"done: {Path(args.out) / 'distances.npy'} ({len(Z)} x {len(Z)}); {solved} blocks solved in {seconds:.1f} s; "
        f"{document['failures']} pair(s) did not converge (their entries are the lengths of unconverged curves, "
        "upper bounds; listed in run.json)"
    )
    return 0
