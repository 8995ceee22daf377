"""What evaluating the decoder in chunks did to the floor and to the solvers (a measurement).

Run: python docs/examples/floor_chunks.py
(needs runs/models/mnist-2d-amortize-b: a copy of runs/models/mnist-2d/model.pt
after `vaemanifold amortize --model runs/models/mnist-2d-amortize-b --threads 1`)

On 48 held-out mnist-2d pairs, the floor (one 512-point length evaluation of
every pair, 24,576 decoder points), the refined amortized solver and the cold
default solver, with the decoder evaluated 1,024 points at a time (the
default, vaemanifold.manifold.EMBED_CHUNK) and in one batch, twice each.
"""

import torch

import vaemanifold as vm
import vaemanifold.manifold
from vaemanifold.evaluation import benchmark
from vaemanifold.evaluation.problems import model_problem

torch.set_num_threads(1)
problem = model_problem(vm.load("runs/models/mnist-2d-amortize-b"), "mnist-2d", 48)
network = vm.GeodesicNetwork.load("runs/models/mnist-2d-amortize-b/geodesic_network.pt")
for repeat in range(2):
    for chunk in (1024, 10**9):
        vaemanifold.manifold.EMBED_CHUNK = chunk
        floor = benchmark.measure_floor(problem)
        refined = benchmark.run_solver(problem.manifold, problem.z0, problem.z1, "amortized", {"network": network, "refine": True})
        cold = benchmark.run_solver(problem.manifold, problem.z0, problem.z1, "gauss_newton", {})
        refine_s, cold_s = refined.seconds / problem.pairs, cold.seconds / problem.pairs
        print(
            f"chunk {'1024' if chunk == 1024 else 'none':<5} floor {floor * 1e3:.2f} ms; amortized + refine "
            f"{refine_s * 1e3:.1f} ms = {refine_s / floor:.2f} floors; gauss_newton {cold_s * 1e3:.1f} ms = {cold_s / floor:.2f} floors"
        )
