"""Properties every registered solver must have, run over vm.SOLVERS (a new solver gets them by registering).

* a pair's result is the same alone as in a batch (per-pair independence);
* float32 and float64 endpoints both work, in the endpoints' dtype, and agree.
"""

import pytest
import torch

import vaemanifold as vm
from vaemanifold import analytic

SOLVER_NAMES = sorted(vm.SOLVERS)
#: Options per solver on the sphere (the graph solver needs chart points and more neighbours there).
OPTIONS = {"graph": {"k": 24}}
#: Relative length agreement between float32 and float64 runs (default 1e-3). The graph solver's
#: path through grid points may switch between near-equal paths under float32 rounding.
DTYPE_RTOL = {"graph": 2e-2}


def sphere() -> vm.DecoderManifold:
    return analytic.sphere_manifold(latents=analytic.sphere_grid())


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_a_pair_alone_equals_the_pair_in_a_batch(name):
    M = sphere()
    z0, z1 = analytic.sphere_pairs(5, seed=11)
    batch = vm.connecting_geodesic(M, z0, z1, method=name, **OPTIONS.get(name, {}))
    for b in (0, 3):
        alone = vm.connecting_geodesic(M, z0[b : b + 1], z1[b : b + 1], method=name, **OPTIONS.get(name, {}))
        torch.testing.assert_close(alone.length[0], batch.length[b], rtol=1e-5, atol=0)
        assert bool(alone.converged[0]) == bool(batch.converged[b])


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_float32_and_float64_endpoints(name):
    z0, z1 = analytic.sphere_pairs(3, seed=12)
    results = {}
    for dtype in (torch.float32, torch.float64):
        M = sphere().to(dtype)
        result = vm.connecting_geodesic(M, z0.to(dtype), z1.to(dtype), method=name, **OPTIONS.get(name, {}))
        assert result.length.dtype == dtype and result.curve(torch.linspace(0, 1, 5, dtype=dtype)).dtype == dtype
        assert result.converged.all(), (dtype, result.reasons)
        results[dtype] = result.length.double()
    torch.testing.assert_close(
        results[torch.float32], results[torch.float64], rtol=DTYPE_RTOL.get(name, 1e-3), atol=0
    )
