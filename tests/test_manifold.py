"""DecoderManifold against autograd, closed forms and stochman's own Manifold code."""

import math

import pytest
import stochman
import torch
from torch import nn

import vaemanifold as vm
from vaemanifold import analytic


def mlp(d: int, D: int, seed: int, softplus: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, D)] + ([nn.Softplus()] if softplus else [])
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("with_std", [False, True])
def test_metric_is_jacobian_gram_from_autograd(with_std):
    mean, std = mlp(3, 5, 0), (mlp(3, 4, 1, softplus=True) if with_std else None)
    M = vm.DecoderManifold(mean, std)
    z = torch.randn(6, 3, dtype=torch.float64)

    def f(x):
        return torch.cat([mean(x), std(x)], -1) if with_std else mean(x)

    expected = torch.stack([(J.T @ J) for J in (torch.autograd.functional.jacobian(f, zi) for zi in z)])
    torch.testing.assert_close(M.metric(z), expected)
    torch.testing.assert_close(M.log_magnification(z), 0.5 * torch.logdet(expected))
    u, v = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(M.inner(z, u, v), torch.einsum("ni,nij,nj->n", u, expected, v))
    torch.testing.assert_close((M.velocity(z, u) ** 2).sum(-1), M.inner(z, u, u))


def test_embed_follows_stochman_contract():
    M = analytic.random_mlp_manifold(2, data_dim=7)
    points = torch.randn(3, 5, 2)
    assert M.embed(points).shape == (3, 5, 14)
    emb, J = M.embed(points[0], jacobian=True)
    assert emb.shape == (5, 14) and J.shape == (5, 14, 2)
    assert M.metric(points[0]).shape == (5, 2, 2)


@pytest.mark.parametrize("with_std", [False, True])
def test_embed_in_chunks_matches_autograd_and_keeps_gradients(monkeypatch, with_std):
    """Batches larger than EMBED_CHUNK are embedded chunk by chunk, with the same values, Jacobians
    (in the tangent-major layout node_system views) and gradients as one batch; so is the geodesic
    equation (its second-order jets in chunks of SECOND_JET_ROWS rows), gradients included."""
    mean, std = mlp(3, 5, 0), (mlp(3, 4, 1, softplus=True) if with_std else None)
    M = vm.DecoderManifold(mean, std)
    z = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    dz = torch.randn(2, 7, 3, dtype=torch.float64)
    whole, whole_J = M.embed(z, jacobian=True)
    whole_acceleration = M.geodesic_system(z, dz)
    (whole_acceleration_grad,) = torch.autograd.grad(whole_acceleration.square().sum(), z)
    monkeypatch.setattr(vm.manifold, "EMBED_CHUNK", 4)  # 14 points: chunks of 4, 4, 4, 2
    monkeypatch.setattr(vm.manifold, "SECOND_JET_ROWS", 24)  # (3 + d) = 6 jet rows a point: the same chunks
    values, J = M.embed(z, jacobian=True)
    acceleration = M.geodesic_system(z, dz)
    torch.testing.assert_close(acceleration, whole_acceleration)
    torch.testing.assert_close(torch.autograd.grad(acceleration.square().sum(), z)[0], whole_acceleration_grad)

    def f(x):
        return torch.cat([mean(x), std(x)], -1) if with_std else mean(x)

    expected = torch.stack([torch.autograd.functional.jacobian(f, zi) for zi in z.detach().reshape(-1, 3)])
    torch.testing.assert_close(values, f(z.detach()))
    torch.testing.assert_close(J, expected.view(2, 7, -1, 3))
    torch.testing.assert_close(J, whole_J)
    assert J.movedim(-1, 0).is_contiguous()  # tangent-major, as in one batch
    (grad,) = torch.autograd.grad(values.square().sum() + J.sum(), z)
    (whole_grad,) = torch.autograd.grad(whole.square().sum() + whole_J.sum(), z)
    torch.testing.assert_close(grad, whole_grad)
    torch.testing.assert_close(M.embed(z), values)


def test_metric_chunks_agree():
    M = analytic.random_mlp_manifold(2)
    z = torch.randn(50, 2)
    torch.testing.assert_close(M.metric(z, chunk_size=7), M.metric(z))


def test_linear_decoder_length_energy_closed_form():
    A = torch.randn(5, 3, dtype=torch.float64)
    M = analytic.linear_manifold(A)
    z0, z1 = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    t = torch.linspace(0, 1, 11, dtype=torch.float64).unsqueeze(-1)
    line = (1 - t) * z0 + t * z1
    truth = (A @ (z1 - z0)).norm()
    torch.testing.assert_close(M.curve_length(line), truth.view(1))
    torch.testing.assert_close(M.curve_energy(line), truth**2)  # constant speed: E = L^2
    torch.testing.assert_close(M.metric(z0.view(1, 3))[0], A.T @ A)


def test_curve_functions_never_mutate_inputs():
    M = analytic.random_mlp_manifold(2)
    curve = torch.randn(10, 2)
    before = curve.clone()
    M.curve_length(curve)
    M.curve_energy(curve)
    M.embed(curve)
    assert curve.shape == (10, 2) and torch.equal(curve, before)


def test_curve_functions_accept_basic_curves():
    M = analytic.random_mlp_manifold(2, dtype=torch.float64)
    z0, z1 = torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64)
    spline = vm.SplineCurve(z0, z1)
    t = torch.linspace(0, 1, 300, dtype=torch.float64)
    torch.testing.assert_close(M.curve_length(spline, grid=300), M.curve_length(spline(t)))
    assert M.curve_energy(spline, reduction="none").shape == (2,)


def test_geodesic_system_matches_sphere_christoffel_symbols():
    # metric diag(1, sin^2 theta): theta'' = sin cos phi'^2, phi'' = -2 cot(theta) theta' phi'
    M = analytic.sphere_manifold()
    c = torch.tensor([[0.7, 0.3], [1.9, -1.0]], dtype=torch.float64)
    dc = torch.tensor([[0.4, -1.2], [-0.8, 0.5]], dtype=torch.float64)
    th, dth, dph = c[:, 0], dc[:, 0], dc[:, 1]
    expected = torch.stack([th.sin() * th.cos() * dph**2, -2 * th.cos() / th.sin() * dth * dph], -1)
    torch.testing.assert_close(M.geodesic_system(c, dc), expected)


def test_geodesic_system_is_zero_for_linear_decoders_and_differentiable():
    M = analytic.linear_manifold(torch.randn(4, 2, dtype=torch.float64))
    c = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    ddc = M.geodesic_system(c, torch.randn(5, 2, dtype=torch.float64))
    torch.testing.assert_close(ddc, torch.zeros_like(ddc))
    ddc.sum().backward()  # keeps the autograd graph (stochman's torch.solve path cannot)
    assert c.grad is not None


def test_stochman_base_class_functions_accept_decoder_manifold():
    """stochman's own Manifold.curve_length (via inner/metric) agrees with the embedded length."""
    M = analytic.random_mlp_manifold(2, dtype=torch.float64)
    t = torch.linspace(0, 1, 2000, dtype=torch.float64).unsqueeze(-1)
    curve = torch.stack([t[:, 0], (3 * t[:, 0]).sin()], -1)
    # stochman uses the metric at each segment's start (first order), we use secants in data space
    via_metric = stochman.manifold.Manifold.curve_length(M, curve.clone())
    torch.testing.assert_close(via_metric, M.curve_length(curve), rtol=1e-3, atol=0)


def test_stochman_shooting_geodesic_runs_on_sphere():
    """stochman's ODE path (torchdiffeq + geodesic_system) now works: it stays on a great circle."""
    M = analytic.sphere_manifold()
    p = torch.tensor([math.pi / 2, 0.0], dtype=torch.float64)
    v = torch.tensor([0.0, 1.0], dtype=torch.float64)  # along the equator
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    c, _ = stochman.geodesic.shooting_geodesic(M, p, v, t=t)
    torch.testing.assert_close(c[:, 0, 0], torch.full((5,), math.pi / 2, dtype=torch.float64))
    torch.testing.assert_close(c[:, 1, 0], t)


def test_frozen_restores_requires_grad_and_solvers_leave_decoder_grads_alone():
    decoder = mlp(2, 4, 0)
    M = vm.DecoderManifold(decoder)
    with M.frozen():
        assert not any(p.requires_grad for p in decoder.parameters())
    assert all(p.requires_grad for p in decoder.parameters())
    vm.connecting_geodesic(M, torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), iterations=5)
    assert all(p.grad is None for p in decoder.parameters())


def test_bad_input_is_refused_with_clear_messages():
    M = analytic.random_mlp_manifold(2)
    with pytest.raises(ValueError, match="latent dimension 3"):
        M.metric(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        M.embed(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        M.metric([[0.0, 0.0]])
    with pytest.raises(TypeError, match="callable"):
        vm.DecoderManifold("not a decoder", latent_dim=2)
    with pytest.raises(ValueError, match="N >= 2"):
        M.curve_length(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="latents"):
        vm.DecoderManifold(lambda z: z, latents=torch.full((3, 2), float("inf")))


def test_a_plain_function_decoder_learns_its_latent_dimension_from_the_first_points():
    M = vm.DecoderManifold(lambda z: torch.cat([z, torch.sin(z)], dim=-1))
    with pytest.raises(ValueError, match="not known yet"):
        M.latent_dim
    z0 = torch.zeros(2, 3, dtype=torch.float64)
    z1 = torch.tensor([[1.0, 0.0, 0.5], [0.2, -1.0, 0.3]], dtype=torch.float64)
    result = vm.connecting_geodesic(M, z0, z1)
    assert M.latent_dim == 3 and result.converged.all()
    assert M.metric(z0).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="latent dimension 2"):
        M.embed(torch.zeros(4, 2))
    fresh = vm.DecoderManifold(lambda z: z**2)
    assert fresh.metric(torch.ones(5, 4)).shape == (5, 4, 4)
