"""`vaemanifold train`: train a VAE with a calibrated variance network and write its run folder."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

from .. import data
from .._checks import check_output_folder
from ..vae import TrainConfig, VAEConfig, train
from ..vae.model import DECODERS
from ..vae.checkpoint import save_run
from .arguments import positive_int

NAME = "train"
HELP = "Train a VAE (encoder + mean, then the RBF variance network) and write model.pt and its training curves."


def int_list(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2), for argparse."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=positive_int, default=1,
        help="torch CPU threads (default 1: these small models train fastest on one thread "
        "whenever other processes share the cores; 0 = torch's default)",
    )


def set_threads(threads: int) -> None:
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist", choices=data.DATASETS)
    parser.add_argument("--classes", type=int_list, default=None, help="labels to keep, e.g. 0,1,2 (default all)")
    parser.add_argument("--per-class", type=positive_int, default=None, help="training samples per class (default all)")
    parser.add_argument("--root", default=None, help="torchvision-layout data folder, tried before the offline sources")
    parser.add_argument("--out", required=True, help="run folder: gets model.pt, history.json, history.png")
    parser.add_argument("--latent-dim", type=positive_int, default=2)
    parser.add_argument("--hidden", type=int_list, default=(256, 128), help="encoder widths (default 256,128)")
    parser.add_argument("--activation", default="tanh", choices=("tanh", "softplus", "silu"))
    parser.add_argument(
        "--decoder", default="mlp", choices=DECODERS,
        help="decoder mean: 'mlp' (the encoder mirrored) or 'conv' (transposed convolutions, square images)",
    )
    parser.add_argument("--centers", type=positive_int, default=64, help="RBF centres of the variance network (default 64)")
    parser.add_argument("--bandwidth", type=float, default=1.0, help="RBF bandwidth scale a (default 1.0)")
    parser.add_argument("--epochs", type=positive_int, default=60, help="phase-1 epochs (default 60)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--noise-std", type=float, default=0.02, help="data noise assumed when fitting the variance (default 0.02)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: CUDA when present, else the CPU")
    add_threads_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    check_output_folder(args.out)
    X, y = data.load(args.dataset, "train", classes=args.classes, per_class=args.per_class, root=args.root, seed=args.seed)
    print(f"data: {len(X)} samples of dimension {X.shape[1]} from {data.source(args.dataset, 'train', args.root)}")
    image = args.dataset in data.IMAGE_DATASETS
    config = VAEConfig(
        data_dim=X.shape[1], latent_dim=args.latent_dim, hidden=args.hidden, activation=args.activation,
        output="sigmoid" if image else "identity", num_centers=args.centers, bandwidth_scale=args.bandwidth,
        decoder=args.decoder,
    )
    schedule = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, noise_std=args.noise_std, seed=args.seed
    )
    start = time.perf_counter()
    model, history = train(X, y, config, schedule, device=args.device, progress=not args.quiet)
    model.metadata = {
        "dataset": args.dataset,
        "classes": list(args.classes) if args.classes is not None else None,
        "per_class": args.per_class,
        "data_source": data.source(args.dataset, "train", args.root),
        "schedule": asdict(schedule),
        "seconds": history.seconds,
        "summary": history.summary,
        "device": history.device,
        "threads": history.threads,
    }
    path = save_run(model, history, args.out)
    summary, seconds = history.summary, history.seconds
    print(f"ELBO {summary['elbo']:.1f} nats/sample, KL {summary['kl']:.2f} nats")
    print(f"reconstruction error: MSE {summary['recon_mse']:.4f}, RMSE {summary['recon_rmse']:.4f} per dimension")
    print(f"sigma(far)/sigma(data) = {summary['sigma_ratio']:.1f}")
    print(
        f"trained in {seconds['total']:.1f} s (phase 1 {seconds['mean']:.1f} s, phase 2 {seconds['variance']:.1f} s) "
        f"on {history.device}, {history.threads} thread(s); {time.perf_counter() - start:.1f} s with evaluation"
    )
    print(f"checkpoint: {path}; curves: {path.parent / 'history.png'}")
    return 0
