"""Why the raw network's curves miss median L/best <= 1.01 on mnist-2d (a measurement).

Run: python docs/examples/amortized_limits.py   (one thread, about 10 minutes)

On the 48 held-out test pairs that ``vaemanifold amortize`` measures, against
the best known length per pair (the cold default solver and the tight
Gauss-Newton reference, on the dense grid):

1. Which of the curve's sine modes carry the raw curves' excess length. The
   network gives g(t) = line + sum_k c_k sin(k pi t). The reference
   geodesics, projected on the same K modes by least squares, give the
   coefficients the network should have predicted. The table swaps the
   network's first k modes for the geodesic's and measures the curves again.
2. How the raw curves improve with the number of distilled geodesics
   (``GeodesicNetwork.fit`` defaults, seed 0, only ``distill`` changed, with
   no time limit so that every requested pair is solved), and with 4,096 of
   them, a wider network trained three times as long.
"""

import math
import time

import numpy as np
import torch

import vaemanifold as vm
from vaemanifold.evaluation import benchmark as bm
from vaemanifold.curves import line_points
from vaemanifold.evaluation.amortization import REFERENCE
from vaemanifold.evaluation.problems import model_problem
from vaemanifold.geodesic import MEASURE_GRID
from vaemanifold.vae import pretrained

#: distilled pairs -> the fit's other options (beyond the defaults)
FITS = {
    (512, "defaults"): {},
    (1024, "defaults"): {},
    (2048, "defaults"): {},
    (4096, "defaults"): {},
    (4096, "hidden 256 x 3, 30,000 steps"): {"hidden": (256, 256, 256), "distill_steps": 30000},
}
SWAPPED = (0, 1, 2, 4, 8, 12)

torch.set_num_threads(1)
model = pretrained("mnist-2d", progress=False)
manifold = model.manifold()
problem = model_problem(model, "mnist-2d", 48, 0)
z0, z1 = problem.z0, problem.z1
cold = bm.run_solver(manifold, z0, z1, "gauss_newton", {}, label="gauss_newton")
reference = bm.run_solver(manifold, z0, z1, *REFERENCE, warmup=False, label="reference")
best = bm.best_known([cold, reference])[0]

t = torch.linspace(0, 1, MEASURE_GRID, dtype=z0.dtype)
line = line_points(z0, z1, t)  # (B, T, d), as the network's curves start
geodesics = vm.connecting_geodesic(manifold, z0, z1, method=REFERENCE[0], **REFERENCE[1]).curve
with torch.no_grad():
    geodesic_points = geodesics(t).reshape(line.shape)
chord = (z1 - z0).norm(dim=-1).view(-1, 1, 1)


def ratios(points: torch.Tensor) -> str:
    """Median and p90 of L/best for curves given by their (B, T, d) points on the dense grid."""
    with torch.no_grad():
        ratio = (manifold.curve_length(points).double() / best).numpy()
    return f"{np.median(ratio):.4f}, {np.percentile(ratio, 90):.4f}"


def sine_basis(modes: int) -> torch.Tensor:
    """(T, K) sin(k pi t) on the dense grid."""
    k = torch.arange(1, modes + 1, dtype=t.dtype)
    return torch.sin(math.pi * k * t.unsqueeze(-1))


networks = {}
print("raw curves against the number of distilled geodesics (fit defaults, seed 0, no time limit)\n")
print("| distilled pairs | network | fit s | median, p90 L/best |")
print("|---|---|---|---|")
for (count, label), options in FITS.items():
    start = time.perf_counter()
    network = vm.GeodesicNetwork.fit(
        manifold, model.latents, distill=count, seconds=1e6, seed=0, show_progress=False, **options
    )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        points = network.points(t.expand(len(z0), -1), z0, z1)
    networks[count, label] = network
    print(f"| {count} | {label} | {seconds:.0f} | {ratios(points)} |", flush=True)

network = networks[2048, "defaults"]
basis = sine_basis(network.modes)
with torch.no_grad():
    predicted = network.coefficients(z0, z1)[:, 0]  # (B, K, d)
target = torch.linalg.lstsq(basis.expand(len(z0), -1, -1), geodesic_points - line).solution
print(f"\nthe 2048-geodesic network's sine modes against the geodesics' ({network.modes} modes)\n")
print("| mode k | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 |")
print("|---|---|---|---|---|---|---|---|---|")
for label, values in (("geodesic's coefficient", target), ("network's error", predicted - target)):
    rms = (values / chord).pow(2).sum(dim=-1).mean(dim=0).sqrt()  # relative to the chord, over pairs
    print(f"| {label}, rms / chord | " + " | ".join(f"{v:.3f}" for v in rms[:8].tolist()) + " |")
print("\n| curve | median, p90 L/best |")
print("|---|---|")
print(f"| the geodesic's {network.modes} modes (the basis's limit) | {ratios(line + basis @ target)} |")
for k in SWAPPED:
    mixed = predicted.clone()
    mixed[:, :k] = target[:, :k]
    label = "the network's curve" if not k else f"the network's, modes 1-{k} the geodesic's"
    print(f"| {label} | {ratios(line + basis @ mixed)} |")
