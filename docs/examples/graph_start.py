"""The default solver from the straight line against its default start (graph_start): cost and accuracy.

Run: python docs/examples/graph_start.py  (one thread; the three benchmark presets, trained or cached)

On the benchmark's 16 held-out pairs of each preset (seed 0) and of a second
draw (seed 1), gauss_newton with graph_start=False (every pair from the
straight line) and with its default (per pair the line or the path on the
10-NN graph of the training codes, whichever has the lower energy). Both
are timed like the benchmark (after a warm-up, which builds the graph) and
measured on its dense grid; L/best is over the two runs' resolved lengths.
"""

import torch

from vaemanifold.evaluation import benchmark
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.vae.presets import pretrained

torch.set_num_threads(1)
print("floors a pair (solver time / one dense length evaluation); L/best over both runs")
for preset in ("mnist-2d", "mnist-8d", "fashion-2d"):
    model = pretrained(preset)
    for seed in (0, 1):
        problem = model_problem(model, preset, 16, seed=seed)
        runs = {}
        for start in (False, True):
            floor = benchmark.measure_floor(problem)
            run = benchmark.run_solver(problem.manifold, problem.z0, problem.z1, "gauss_newton", {"graph_start": start})
            runs[start] = (run, run.seconds / problem.pairs / floor)
        best, _ = benchmark.best_known([run for run, _ in runs.values()])
        for start, (run, floors) in runs.items():
            ratio = run.length / best
            print(
                f"{preset:10s} seed {seed} {'graph_start' if start else 'line       '}: {floors:5.2f} floors, "
                f"converged {int(run.converged.sum()):2d}/16, L/best median {ratio.median():.5f} "
                f"p90 {ratio.quantile(0.9):.5f} max {ratio.max():.4f}"
            )
