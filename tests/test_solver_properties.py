"""Properties every registered solver must have, run over vm.SOLVERS (a new solver gets them by registering).

* a pair's result is the same alone as in a batch (per-pair independence);
* float32 and float64 endpoints both work, in the endpoints' dtype, and agree;
* a batch started with init= from bent curves reaches the geodesics (or init= is ignored, or refused, as documented);
* a decoder that returns NaN is named as the reason, for the pair that meets it only.
"""

import pytest
import torch

import vaemanifold as vm
from vaemanifold import analytic

from fitted_networks import solver_options

SOLVER_NAMES = sorted(vm.SOLVERS)
#: Options per solver on the sphere (the graph solver needs chart points and more neighbours there;
#: the amortized solver's short-fit network is within about 1% there, so its check allows 5%).
OPTIONS = {"graph": {"k": 24}, "amortized": {"tol": 0.05}}
#: Relative length agreement between float32 and float64 runs (default 1e-3). The graph solver's
#: path through grid points may switch between near-equal paths under float32 rounding.
DTYPE_RTOL = {"graph": 2e-2}


def sphere() -> vm.DecoderManifold:
    return analytic.sphere_manifold(latents=analytic.sphere_grid())


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_a_pair_alone_equals_the_pair_in_a_batch(name):
    M = sphere()
    z0, z1 = analytic.sphere_pairs(5, seed=11)
    batch = vm.connecting_geodesic(M, z0, z1, method=name, **solver_options(name, OPTIONS))
    t = torch.linspace(0, 1, 17, dtype=z0.dtype)
    for b in (0, 3):
        alone = vm.connecting_geodesic(M, z0[b : b + 1], z1[b : b + 1], method=name, **solver_options(name, OPTIONS))
        torch.testing.assert_close(alone.length[0], batch.length[b], rtol=1e-5, atol=0)
        assert bool(alone.converged[0]) == bool(batch.converged[b])
        # the curve itself, not only its length: a start drawn per batch position (the neural solver's
        # weights once were) leaves the same length within 3e-7 here but curves 1.5e-3 apart
        torch.testing.assert_close(alone.curve(t).reshape(len(t), -1), batch.curve[b](t).reshape(len(t), -1), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_float32_and_float64_endpoints(name):
    z0, z1 = analytic.sphere_pairs(3, seed=12)
    results = {}
    for dtype in (torch.float32, torch.float64):
        M = sphere().to(dtype)
        result = vm.connecting_geodesic(M, z0.to(dtype), z1.to(dtype), method=name, **solver_options(name, OPTIONS))
        assert result.length.dtype == dtype and result.curve(torch.linspace(0, 1, 5, dtype=dtype)).dtype == dtype
        assert result.converged.all(), (dtype, result.reasons)
        results[dtype] = result.length.double()
    torch.testing.assert_close(
        results[torch.float32], results[torch.float64], rtol=DTYPE_RTOL.get(name, 1e-3), atol=0
    )


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_no_pairs_give_an_empty_result(name):
    empty = torch.zeros(0, 2, dtype=torch.float64)
    result = vm.connecting_geodesic(sphere(), empty, empty.clone(), method=name, **solver_options(name, OPTIONS))
    assert len(result) == 0 and result.length.shape == (0,) and result.converged.shape == (0,)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_a_zero_length_pair_has_length_zero_and_converges(name):
    z0, z1 = analytic.sphere_pairs(2, seed=13)
    z1 = torch.stack([z1[0], z0[1]])  # the second pair joins a point to itself
    result = vm.connecting_geodesic(sphere(), z0, z1, method=name, **solver_options(name, OPTIONS))
    assert result.length[1].item() == pytest.approx(0.0, abs=1e-9)
    assert bool(result.converged[1]), result.reasons[1]


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_the_caller_s_random_state_is_left_unchanged(name):
    # a solver that seeds its start must not reseed the caller's generator (the neural solver once did)
    z0, z1 = analytic.sphere_pairs(2, seed=15)
    M = sphere()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    vm.connecting_geodesic(M, z0, z1, method=name, **solver_options(name, OPTIONS))
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_the_inputs_are_left_unchanged(name):
    z0, z1 = analytic.sphere_pairs(2, seed=14)
    before = z0.clone(), z1.clone()
    vm.connecting_geodesic(sphere(), z0, z1, method=name, **solver_options(name, OPTIONS))
    assert torch.equal(z0, before[0]) and torch.equal(z1, before[1])


#: Solvers that make their own start: ``init=`` is ignored (linear, graph) or refused (amortized).
OWN_START = {"linear", "graph", "amortized"}


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_a_batch_started_from_bent_curves_reaches_the_great_circles(name):
    """init= from four curves bent up to 0.5 off the chord (3-16% longer than the great circles)."""
    M = sphere()
    z0, z1 = analytic.sphere_pairs(4, seed=13)
    bent = vm.NeuralCurve(z0, z1, hidden=(4,), requires_grad=False)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        bent.params.copy_(0.5 * torch.randn(bent.params.shape, generator=generator, dtype=torch.float64))
    options = solver_options(name, OPTIONS)
    if name == "amortized":
        with pytest.raises(ValueError, match="init= is not used"):
            vm.connecting_geodesic(M, z0, z1, method=name, init=bent, **options)
        return
    result = vm.connecting_geodesic(M, z0, z1, method=name, init=bent, **options)
    if name in OWN_START:
        own = vm.connecting_geodesic(M, z0, z1, method=name, **options)
        torch.testing.assert_close(result.length, own.length, rtol=1e-9, atol=0)
        return
    assert result.converged.all(), result.reasons
    torch.testing.assert_close(result.length, analytic.great_circle_distance(z0, z1), rtol=1e-4, atol=0)


def holed_sphere(z: torch.Tensor) -> torch.Tensor:
    """The sphere chart with a hole: NaN wherever phi lies in (0.4, 0.6)."""
    image = analytic.sphere_chart(z)
    hole = ((z[..., 1] > 0.4) & (z[..., 1] < 0.6)).unsqueeze(-1)
    return torch.where(hole, torch.full_like(image, float("nan")), image)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_a_decoder_that_returns_nan_is_flagged_with_that_reason(name):
    M = vm.DecoderManifold(holed_sphere, latents=analytic.sphere_grid(), latent_dim=2)
    z0 = torch.tensor([[1.2, -0.5], [1.2, 1.0]], dtype=torch.float64)
    z1 = torch.tensor([[1.6, 1.5], [1.6, 1.3]], dtype=torch.float64)  # the first pair must cross the hole
    result = vm.connecting_geodesic(M, z0, z1, method=name, **solver_options(name, OPTIONS))
    assert not bool(result.converged[0])
    assert any(word in result.reasons[0].lower() for word in ("nan", "non-finite", "not finite")), result.reasons[0]
    assert bool(result.converged[1]), result.reasons[1]


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
@pytest.mark.parametrize("name", ["neural", "spline"])
def test_first_order_optimisers_name_a_nan_decoder(name, optimizer):
    M = vm.DecoderManifold(holed_sphere, latents=analytic.sphere_grid(), latent_dim=2)
    z0 = torch.tensor([[1.2, -0.5]], dtype=torch.float64)
    z1 = torch.tensor([[1.6, 1.5]], dtype=torch.float64)
    result = vm.connecting_geodesic(M, z0, z1, method=name, optimizer=optimizer)
    assert not bool(result.converged[0])
    assert "non-finite" in result.reasons[0], result.reasons[0]
