"""Decoder Jacobians by torch.func's vmapped JVPs against one fused pass (vaemanifold.jets), and the
geodesic equation's right-hand side (the ODE solver's cost) by nested JVPs against second-order jets.

Run: python docs/examples/jet_speed.py  (one thread; the mnist-2d preset, trained or cached)
"""

import time

import torch
from torch.func import jvp, vmap

from vaemanifold.jets import basis_jet, jet_rule
from vaemanifold.manifold import DecoderManifold
from vaemanifold.vae.presets import pretrained


def microseconds_per_point(fn, points: int, repeats: int = 30) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats / points * 1e6


if __name__ == "__main__":
    torch.set_num_threads(1)
    manifold = pretrained("mnist-2d").manifold()
    z = torch.randn(1024, 2, generator=torch.Generator().manual_seed(0))
    basis = torch.eye(2)
    print("us a point, 1,024 points, one thread")
    with torch.no_grad():
        for name, part in (("mean", manifold.mean), ("std", manifold.std)):
            rule = jet_rule(part)

            def by_torch_func(part=part):
                return vmap(lambda v: jvp(part, (z,), (v.expand_as(z),)), out_dims=(None, 0))(basis)

            print(
                f"{name:5s} pass {microseconds_per_point(lambda: part(z), 1024):5.1f}"
                f"  Jacobian by torch.func {microseconds_per_point(by_torch_func, 1024):5.1f}"
                f"  fused {microseconds_per_point(lambda: rule(basis_jet(z), 1024), 1024):5.1f}"
            )
        for dtype in (torch.float32, torch.float64):
            fused = manifold.to(dtype)
            by_func = DecoderManifold(lambda x: fused.mean(x), lambda x: fused.std(x), latent_dim=2)  # no rules
            c, dc = z.to(dtype), torch.randn(1024, 2, generator=torch.Generator().manual_seed(1)).to(dtype)
            print(
                f"geodesic equation, {str(dtype)[6:]}: nested JVPs"
                f" {microseconds_per_point(lambda: by_func.geodesic_system(c, dc), 1024):6.1f}"
                f"  second-order jets {microseconds_per_point(lambda: fused.geodesic_system(c, dc), 1024):6.1f}"
            )
