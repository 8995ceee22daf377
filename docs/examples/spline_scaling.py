"""The spline solver's damping, coarse levels and last level (a measurement).

Run: python docs/examples/spline_scaling.py [BENCHMARK_JSON]
(BENCHMARK_JSON default runs/benchmark-models-20/benchmark.json, a full run of
`vaemanifold benchmark`, whose best known lengths are used; one thread.)

On the benchmark's 16 held-out pairs of each preset, from the straight line:
``spline`` at its defaults (Levenberg's damping on the coarse levels,
``scaling='points'`` on the last), Levenberg's on every level (the earlier
default, ``scaling='identity'``), the same with 200 steps on the last level,
and ``'points'`` on every level. Time per pair in floors (one dense length
evaluation), the floor measured before each run; L/best on the benchmark's
dense grid against the shorter of the file's best known length and every run
here; the three longest pairs.
"""

import json
import sys

import torch

from vaemanifold.evaluation import benchmark
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.vae.presets import pretrained

torch.set_num_threads(1)
path = sys.argv[1] if len(sys.argv) > 1 else "runs/benchmark-models-20/benchmark.json"
known = {m["name"]: torch.tensor(m["best_known"], dtype=torch.float64) for m in json.load(open(path))["models"]}
SETTINGS = {
    "defaults": {},
    "identity": {"scaling": "identity"},
    "identity, 200 steps": {"scaling": "identity", "iterations": 200},
    "points everywhere": {"scaling": "points", "coarse_scaling": "points"},
}
print("spline from the straight line, 16 pairs a preset; floors a pair; L/best p90, the three longest pairs")
for preset in ("mnist-2d", "mnist-8d", "fashion-2d"):
    problem = model_problem(pretrained(preset), preset, 16, seed=0)
    rows = []
    for label, options in SETTINGS.items():
        floor = benchmark.measure_floor(problem)
        run = benchmark.run_solver(problem.manifold, problem.z0, problem.z1, "spline", options)
        rows.append((label, run, floor, run.seconds / problem.pairs / floor))
    best = torch.minimum(known[preset], benchmark.best_known([run for _, run, _, _ in rows])[0])
    for label, run, floor, floors in rows:
        ratio = run.length.double() / best
        longest = ratio.argsort()[-3:].flip(0).tolist()
        worst = ", ".join(f"{pair}: {ratio[pair]:.4f}" for pair in longest)
        print(
            f"{preset:10s} {label:19s}: {floors:5.1f} floors (of {floor * 1e3:.2f} ms), "
            f"converged {int(run.converged.sum()):2d}/16, p90 {ratio.quantile(0.9):.5f}; longest {worst}",
            flush=True,
        )
