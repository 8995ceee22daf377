"""Geodesic networks fitted once per test session to the test manifolds, for the amortized solver.

The solver suites run every registered solver; the amortized one needs a
network fitted to the manifold it is given (its fingerprint is checked).
"""

from functools import lru_cache

import torch

import vaemanifold as vm
from vaemanifold import analytic

#: The linear decoder of the ground-truth suites (its geodesics are straight lines).
LINEAR_MAP = ((2.0, 0.5), (0.0, 1.0), (1.0, -1.0))


@lru_cache(maxsize=None)
def sphere_network() -> vm.GeodesicNetwork:
    """A short fit on chart points of the sphere (about 15 s on one core)."""
    return vm.GeodesicNetwork.fit(
        analytic.sphere_manifold(), analytic.sphere_grid(20, 30), seconds=3600, distill=256, distill_steps=2000,
        show_progress=False,
    )


@lru_cache(maxsize=None)
def linear_network() -> vm.GeodesicNetwork:
    """A short fit on the LINEAR_MAP decoder, codes from N(0, I)."""
    codes = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    M = analytic.linear_manifold(torch.tensor(LINEAR_MAP, dtype=torch.float64))
    return vm.GeodesicNetwork.fit(M, codes, seconds=3600, distill=128, distill_steps=500, show_progress=False)


@lru_cache(maxsize=None)
def mlp_network() -> vm.GeodesicNetwork:
    """A short fit on ``analytic.random_mlp_manifold(2)`` in float64, codes 1.5 N(0, I) (seed 2)."""
    codes = torch.randn(600, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.5
    M = analytic.random_mlp_manifold(2, dtype=torch.float64)
    return vm.GeodesicNetwork.fit(M, codes, seconds=3600, distill=256, distill_steps=2000, show_progress=False)


def solver_options(name: str, base: dict, network=sphere_network) -> dict:
    """``base``'s options for solver ``name``, plus a fitted network for the amortized solver."""
    return {**base.get(name, {}), **({"network": network()} if name == "amortized" else {})}
