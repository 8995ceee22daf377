"""One head or several: what multiple hypotheses buy a geodesic network (a measurement).

Run: python docs/examples/amortized_heads.py [PRESET ...]   (default: mnist-2d)

For each preset, two networks are fitted with the same budget and seed
(``GeodesicNetwork.fit`` defaults, 170 s), one with a single head and one
with 8, and each is measured on 48 held-out test pairs as
``vaemanifold amortize`` measures it: raw, refined (``refine=True``) and the
cold default solver, L/best with the floor measured in the same run, one
thread. With 8 heads the solver's time includes choosing each pair's
shortest head (8 x 16 decoder points).
"""

import sys
import time

import torch

import vaemanifold as vm
from vaemanifold.evaluation.amortization import evaluate_network, markdown
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.vae import pretrained

torch.set_num_threads(1)
for preset in sys.argv[1:] or ["mnist-2d"]:
    model = pretrained(preset, progress=False)
    manifold = model.manifold()
    problem = model_problem(model, preset, 48, 0)
    for heads in (1, 8):
        start = time.perf_counter()
        network = vm.GeodesicNetwork.fit(manifold, model.latents, heads=heads, seed=0, show_progress=False)
        fit_seconds = time.perf_counter() - start
        result = evaluate_network(problem, network, fit_seconds)
        print(f"\n{preset}, heads={heads}: fit {fit_seconds:.1f} s, floor {result['floor_seconds_per_pair'] * 1e3:.2f} ms a pair")
        print(markdown(result), flush=True)
