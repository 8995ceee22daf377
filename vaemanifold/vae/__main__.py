"""Time the training of a preset: ``python -m vaemanifold.vae --time mnist-2d [--threads 1]``.

Trains from scratch without touching the cache and prints the wall and CPU
seconds of each step, the thread count and the machine's load average
before and after (other processes on the machine slow training down; the
CPU seconds of this process are what it would take on idle cores), then the
model's ELBO, reconstruction error and sigma(far)/sigma(data). For a 2-D
latent space it also times the 200 x 200 log-magnification heat map.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable, Optional, Sequence

import torch

from ..plotting import latent_extent, magnification_grid
from .presets import PRESETS, train_preset


def _timed(step: Callable):
    wall, cpu = time.perf_counter(), time.process_time()
    out = step()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Time the training of a preset (writes nothing).")
    parser.add_argument("--time", metavar="PRESET", required=True, choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; 0: torch's default)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    before = os.getloadavg()
    (model, history), wall, cpu = _timed(lambda: train_preset(args.time, device=args.device, progress=False))
    after = os.getloadavg()
    s = history.seconds
    print(f"preset {args.time}: {PRESETS[args.time].description}")
    print(f"device {history.device}, {history.threads} torch thread(s), {os.cpu_count()} CPUs")
    print(
        f"load average (1, 5, 15 min) before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, "
        f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}"
    )
    print(
        f"training: phase 1 {s['mean']:.1f} s + phase 2 {s['variance']:.1f} s = {s['total']:.1f} s wall "
        f"({len(history.variance_phase)} phase-2 updates); with data loading and evaluation {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU"
    )
    summary = history.summary
    print(
        f"ELBO {summary['elbo']:.1f} nats/image, KL {summary['kl']:.2f}, reconstruction MSE "
        f"{summary['recon_mse']:.4f} (RMSE {summary['recon_rmse']:.4f}) per pixel, "
        f"sigma(far)/sigma(data) {summary['sigma_ratio']:.1f}"
    )
    if model.config.latent_dim == 2:
        manifold = model.manifold()
        extent = latent_extent(manifold.latents.cpu())
        magnification_grid(manifold, extent, 20)  # warm-up
        (_, seconds), wall, cpu = _timed(lambda: magnification_grid(manifold, extent, 200))
        print(f"heat map 200x200 log magnification: {seconds:.2f} s wall, {cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
