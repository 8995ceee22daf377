"""The neural solver's damping at d = 32, with its Fourier features (a measurement).

Run: python docs/examples/neural_scaling_d32.py [MNIST_JSON FASHION_JSON]
(default runs/benchmark-conv-5/benchmark.json and
runs/benchmark-conv-fashion-4/benchmark.json, the convolutional benchmarks of
the results page, whose best known lengths are used; one thread.)

On the 16 held-out pairs of ``mnist-conv-32d`` and ``fashion-conv-32d``,
from the straight line, ``neural`` at its defaults (Levenberg's damping,
``scaling='identity'``) and with Marquardt's (``scaling='diagonal'``): p90
and max of L/best, floors a pair (the floor measured right before each run),
pairs converged.
"""

import json
import sys

import torch

from vaemanifold.evaluation import benchmark
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.vae.presets import pretrained

torch.set_num_threads(1)
paths = sys.argv[1:3] if len(sys.argv) > 2 else [
    "runs/benchmark-conv-5/benchmark.json",
    "runs/benchmark-conv-fashion-4/benchmark.json",
]
for preset, path in zip(("mnist-conv-32d", "fashion-conv-32d"), paths):
    record = next(m for m in json.load(open(path))["models"] if m["name"] == preset)
    best = torch.tensor(record["best_known"], dtype=torch.float64)
    problem = model_problem(pretrained(preset), preset, 16, seed=0)
    for scaling in ("identity", "diagonal"):
        floor = benchmark.measure_floor(problem)
        run = benchmark.run_solver(problem.manifold, problem.z0, problem.z1, "neural", {"scaling": scaling})
        ratio = run.length.double() / best
        print(
            f"{preset:16s} scaling={scaling:8s}: {run.seconds / problem.pairs / floor:6.1f} floors "
            f"(of {floor * 1e3:.1f} ms), converged {int(run.converged.sum()):2d}/16, "
            f"p90 {ratio.quantile(0.9):.5f}, max {ratio.max():.4f}",
            flush=True,
        )
