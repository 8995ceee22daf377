"""The neural solver's Gauss-Newton defaults and damping, over seeds of its start (a measurement).

Run: python docs/examples/neural_defaults.py [BENCHMARK_JSON]
(BENCHMARK_JSON default runs/benchmark-models-16/benchmark.json, a full run of
`vaemanifold benchmark`, whose best known lengths are used; one thread.)

On the benchmark's 16 held-out pairs of each preset, from the straight line:
the defaults (8 Fourier features of t, tol 1e-4, 100 steps on each earlier
level and 70 on the last, levels (32, 64, 96)), the same without features
("no features"), the earlier defaults (no features, 10 and 100 steps) and
Marquardt's damping (``scaling='diagonal'``), each with seeds 0, 1 and 2 of
the start. Time per
pair in floors (one dense length evaluation), the floor measured before each
run; L/best on the benchmark's dense grid against the shorter of the file's
best known length and every run here.

Then, on fashion-2d, the pairs the neural solver leaves long, solved from the
straight line by gauss_newton and from that geodesic (``init=``) by neural
and spline: a curve family whose energy minimum is longer moves away from it.
"""

import json
import sys

import torch

from vaemanifold.evaluation import benchmark
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.vae.presets import pretrained

torch.set_num_threads(1)
path = sys.argv[1] if len(sys.argv) > 1 else "runs/benchmark-models-16/benchmark.json"
known = {m["name"]: torch.tensor(m["best_known"], dtype=torch.float64) for m in json.load(open(path))["models"]}
SETTINGS = {
    "defaults": {},
    "no features": {"features": 0},
    "earlier": {"features": 0, "coarse_iterations": 10, "iterations": 100},
    "diagonal": {"scaling": "diagonal"},
}
problems, long_pairs = {}, []
print("neural from the straight line, 16 pairs a preset; floors a pair; L/best p90 and max")
for preset in ("mnist-2d", "mnist-8d", "fashion-2d"):
    problem = problems[preset] = model_problem(pretrained(preset), preset, 16, seed=0)
    rows = []
    for label, options in SETTINGS.items():
        for seed in (0, 1, 2):
            floor = benchmark.measure_floor(problem)
            run = benchmark.run_solver(problem.manifold, problem.z0, problem.z1, "neural", {**options, "seed": seed})
            run.floor = floor
            rows.append((label, seed, run, run.seconds / problem.pairs / floor))
    best = torch.minimum(known[preset], benchmark.best_known([run for _, _, run, _ in rows])[0])
    for label, seed, run, floors in rows:
        ratio = run.length.double() / best
        print(
            f"{preset:10s} {label:11s} seed {seed}: {floors:5.1f} floors (of {run.floor * 1e3:.2f} ms), "
            f"converged {int(run.converged.sum()):2d}/16, "
            f"p90 {ratio.quantile(0.9):.5f}, max {ratio.max():.4f}"
        )
        if preset == "fashion-2d" and label == "defaults" and seed == 0:
            long_pairs = (ratio > 1.002).nonzero().flatten().tolist()

problem = problems["fashion-2d"]
best = known["fashion-2d"][long_pairs]
z0, z1 = problem.z0[long_pairs], problem.z1[long_pairs]
print(f"\nfashion-2d pairs {long_pairs}, L/best:")
geodesic = benchmark.run_solver(problem.manifold, z0, z1, "gauss_newton", {"graph_start": False}, warmup=False)
print(f"  gauss_newton from the line         {[round(x, 4) for x in (geodesic.length.double() / best).tolist()]}")
for name in ("neural", "spline"):
    run = benchmark.run_solver(problem.manifold, z0, z1, name, {}, init=geodesic.curve)
    print(f"  {name:6s} started from that geodesic {[round(x, 4) for x in (run.length.double() / best).tolist()]}")
