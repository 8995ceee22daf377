"""Time the training of a preset: ``python -m vaemanifold.vae --time mnist-2d [--threads 1]``.

Trains from scratch without touching the cache and prints the seconds of
each phase, the thread count and the machine's load average before and
after (other processes on the machine slow training down), then the
model's ELBO, reconstruction error and sigma(far)/sigma(data).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional, Sequence

import torch

from .presets import PRESETS, train_preset


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Time the training of a preset (writes nothing).")
    parser.add_argument("--time", metavar="PRESET", required=True, choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; 0: torch's default)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    before = os.getloadavg()
    start = time.perf_counter()
    _, history = train_preset(args.time, device=args.device, progress=False)
    wall = time.perf_counter() - start
    after = os.getloadavg()
    s = history.seconds
    print(f"preset {args.time}: {PRESETS[args.time].description}")
    print(f"device {history.device}, {history.threads} torch threads, {os.cpu_count()} CPUs")
    print(f"load average (1, 5, 15 min) before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, "
          f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    print(f"training: phase 1 {s['mean']:.1f} s + phase 2 {s['variance']:.1f} s = {s['total']:.1f} s "
          f"({len(history.variance_phase)} phase-2 updates); with data loading and evaluation {wall:.1f} s")
    summary = history.summary
    print(f"ELBO {summary['elbo']:.1f} nats/image, KL {summary['kl']:.2f}, "
          f"reconstruction MSE {summary['recon_mse']:.4f} (RMSE {summary['recon_rmse']:.4f}) per pixel, "
          f"sigma(far)/sigma(data) {summary['sigma_ratio']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
