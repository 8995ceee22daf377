"""Geodesics on a trained VAE: the default model of `make demo` (mnist-2d).

Run: python docs/examples/trained_model.py
(trains mnist-2d once, about a minute on one CPU core, when `make demo` has
not cached it yet under $VAEMANIFOLD_CACHE or runs/models)
"""

import torch

import vaemanifold as vm
from vaemanifold.vae import pretrained

torch.set_num_threads(1)
model = pretrained("mnist-2d", progress=False)  # from the cache if present, else trained and cached
# A checkpoint written by `vaemanifold train --out DIR` or VAE.save(DIR) loads with vm.load(DIR).
M = model.manifold()  # DecoderManifold(mu, sigma, latents=the training codes)
print(M.latent_dim, "latent dimensions,", len(M.latents), "training codes")

# one training code of each digit 0-3, joined to one of the next digit
first = [int((model.labels == c).nonzero()[0]) for c in (0, 1, 2, 3)]
second = [int((model.labels == c + 1).nonzero()[0]) for c in (0, 1, 2, 3)]
z0, z1 = M.latents[first], M.latents[second]  # (4, 2) each

for method in ("linear", "gauss_newton", "spline", "neural"):  # gauss_newton is the default method
    res = vm.connecting_geodesic(M, z0, z1, method=method)
    lengths = " ".join(f"{x:8.2f}" for x in res.length.tolist())
    print(f"{method:<12} lengths {lengths}   converged {int(res.converged.sum())}/{len(res)}   {res.seconds:.2f} s")
    for reason in sorted({r for r in res.reasons if r}):
        print("             not converged:", reason)
