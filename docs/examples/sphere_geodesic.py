"""A first geodesic: the unit sphere through its spherical-coordinate chart.

The decoder f(theta, phi) = (sin theta cos phi, sin theta sin phi, cos theta)
has known geodesics (great circles), so the result can be checked.
Run: python docs/examples/sphere_geodesic.py
"""

import torch

import vaemanifold as vm
from vaemanifold import analytic

M = analytic.sphere_manifold()  # a DecoderManifold with latent_dim=2, no std
z0 = torch.tensor([[1.0, -1.0], [0.8, 0.0]], dtype=torch.float64)  # (B, d) = (2, 2): two pairs
z1 = torch.tensor([[2.0, 1.5], [2.3, 1.0]], dtype=torch.float64)

res = vm.connecting_geodesic(M, z0, z1, method="spline")
line = vm.connecting_geodesic(M, z0, z1, method="linear")
truth = analytic.great_circle_distance(z0, z1)

print(res)
print("converged:", res.converged.tolist(), res.reasons)
print("geodesic length:     ", [f"{x:.6f}" for x in res.length.tolist()])
print("great-circle distance:", [f"{x:.6f}" for x in truth.tolist()])
print("straight-line length:", [f"{x:.6f}" for x in line.length.tolist()])
print("relative error:      ", [f"{x:.1e}" for x in (res.length / truth - 1).abs().tolist()])
print("grid_change:         ", [f"{x:.1e}" for x in res.grid_change.tolist()])
