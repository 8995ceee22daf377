"""How many segments the amortized solver's convergence check needs (a measurement).

Run: python docs/examples/check_segments.py
(needs runs/models/mnist-2d with its network: `vaemanifold amortize --model runs/models/mnist-2d`)

The raw network's curves of random pairs of training codes are compared with
Gauss-Newton geodesics; a curve more than 1% longer should be flagged not
converged. The check's flags are counted for several ``check_segments``.
"""

import torch

import vaemanifold as vm

torch.set_num_threads(1)
M = vm.load("runs/models/mnist-2d").manifold()
net = vm.GeodesicNetwork.load("runs/models/mnist-2d/geodesic_network.pt")
draw = torch.randint(len(M.latents), (2, 384), generator=torch.Generator().manual_seed(1))
z0, z1 = M.latents[draw[0]], M.latents[draw[1]]
reference = vm.connecting_geodesic(M, z0, z1)
excess = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net).length / reference.length - 1
long = (excess > 0.01) & reference.converged
print(f"{int(reference.converged.sum())} pairs with a converged reference, {int(long.sum())} of them over 1% long")
for segments in (8, 16, 32, 64):
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, check_segments=segments)
    flagged = ~result.converged & reference.converged
    print(
        f"check_segments={segments:<3} flagged {int(flagged.sum())}: {int((flagged & long).sum())} of the long ones, "
        f"{int((flagged & ~long).sum())} others; {result.seconds:.2f} s"
    )
