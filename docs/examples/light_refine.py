"""What a light refinement buys a large distance matrix (a measurement).

Run: python docs/examples/light_refine.py [MODEL_DIR]
(MODEL_DIR default runs/models/mnist-2d-amortize-c, a model folder with its network beside it:
`vaemanifold amortize --model MODEL_DIR`)

Random pairs of the model's training codes, as a distance matrix sees them,
are measured on a 64-point grid (``grid=64``) with the amortized solver raw,
with ``LIGHT_REFINE`` and with ``refine=True``, and compared with the default
solver's geodesics on the dense grid. Time per pair is given in floors (one
dense 512-point length evaluation of the pairs' straight lines), one thread,
after a warm-up on a few pairs.
"""

import sys

import numpy as np
import torch

import vaemanifold as vm
from vaemanifold.evaluation.benchmark import measure_floor
from vaemanifold.evaluation.problems import Problem
from vaemanifold.solvers.amortized import LIGHT_REFINE

torch.set_num_threads(1)
folder = sys.argv[1] if len(sys.argv) > 1 else "runs/models/mnist-2d-amortize-c"
M = vm.load(folder).manifold()
net = vm.GeodesicNetwork.load(f"{folder}/geodesic_network.pt")
draw = torch.randint(len(M.latents), (2, 256), generator=torch.Generator().manual_seed(1))
z0, z1 = M.latents[draw[0]], M.latents[draw[1]]
floor = measure_floor(Problem("codes", M, z0, z1, "random pairs of training codes"))
reference = vm.connecting_geodesic(M, z0, z1, levels=(16, 32, 64, 128), tol=1e-6, extra_levels=0)
print(f"{len(z0)} pairs, reference converged on {int(reference.converged.sum())}; floor {floor * 1e3:.2f} ms a pair")
for label, options in (
    ("raw", {}),
    ("light (LIGHT_REFINE)", {"refine": True, "refine_options": LIGHT_REFINE}),
    ("refine=True", {"refine": True}),
):
    vm.connecting_geodesic(M, z0[:8], z1[:8], method="amortized", network=net, grid=64, **options)
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, grid=64, **options)
    ratio = (result.length / reference.length).double().numpy()
    print(
        f"{label:<22} L64/reference median {np.median(ratio):.4f}, p90 {np.percentile(ratio, 90):.4f}; "
        f"{result.seconds / len(z0) / floor:.2f} floors a pair; converged {int(result.converged.sum())}"
    )
