"""Where refinement starts: the network's curve alone, or the shortest candidate (a measurement).

Run: python docs/examples/refine_start.py [PRESET ...]   (default: mnist-2d fashion-2d mnist-8d)

For each preset one network is fitted (``GeodesicNetwork.fit`` defaults, one
head, seed 0) and measured on 48 held-out test pairs as ``vaemanifold
amortize`` measures it (raw, refined, the cold default solver; L/best with
the floor measured in the same run, one thread), with one more row: the
refinement started from the network's curve alone
(``refine_options={"graph_start": False}``) instead of from whichever of the
network's curve, the straight line and the k-NN graph path is the shortest
on the first level's nodes (``refine=True`` as it is). The best known length
per pair is the shortest over all rows and the reference, so the two refined
rows are compared on the same footing.
"""

import sys
import time

import torch

import vaemanifold as vm
from vaemanifold.evaluation import amortization
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.vae import pretrained

torch.set_num_threads(1)
RUNS = {
    "amortized": amortization.RUNS["amortized"],
    "amortized + refine": amortization.RUNS["amortized + refine"],
    "amortized + refine, network's curve alone": ("amortized", {"refine": True, "refine_options": {"graph_start": False}}),
    "gauss_newton (cold)": amortization.RUNS["gauss_newton (cold)"],
}
for preset in sys.argv[1:] or ["mnist-2d", "fashion-2d", "mnist-8d"]:
    model = pretrained(preset, progress=False)
    problem = model_problem(model, preset, 48, 0)
    start = time.perf_counter()
    network = vm.GeodesicNetwork.fit(model.manifold(), model.latents, seed=0, show_progress=False)
    fit_seconds = time.perf_counter() - start
    result = amortization.evaluate_network(problem, network, fit_seconds, runs=RUNS)
    print(f"\n{preset}: fit {fit_seconds:.1f} s, floor {result['floor_seconds_per_pair'] * 1e3:.2f} ms a pair")
    print(amortization.markdown(result), flush=True)
