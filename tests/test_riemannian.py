"""LatentManifold (geoopt adapter) and the Fréchet mean against autograd and closed forms on the sphere."""

import math

import geoopt
import pytest
import torch

from vaemanifold import analytic
from vaemanifold.riemannian import LatentManifold, frechet_mean


def explicit_metric(decoder: analytic.RandomDecoder, z: torch.Tensor) -> torch.Tensor:
    """M(z) = J^T J from a full autograd Jacobian of concat(mean, std), independent of DecoderManifold."""

    def f(x):
        return torch.cat([decoder.mean(x), decoder.std(x)], -1)

    return torch.stack([J.T @ J for J in (torch.autograd.functional.jacobian(f, zi) for zi in z)])


@pytest.fixture
def random_latent():
    decoder = analytic.RandomDecoder(3, data_dim=6, seed=1).double()
    from vaemanifold import DecoderManifold

    return decoder, LatentManifold(DecoderManifold(decoder.mean, decoder.std, latent_dim=3))


def test_inner_and_riemannian_gradient_match_explicit_metric(random_latent):
    decoder, latent = random_latent
    g = torch.Generator().manual_seed(0)
    z, u, v = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    M = explicit_metric(decoder, z)
    torch.testing.assert_close(latent.inner(z, u, v), torch.einsum("ni,nij,nj->n", u, M, v))
    torch.testing.assert_close(latent.inner(z, u, keepdim=True).squeeze(-1), torch.einsum("ni,nij,nj->n", u, M, u))
    torch.testing.assert_close(latent.egrad2rgrad(z, u), torch.linalg.solve(M, u.unsqueeze(-1)).squeeze(-1))
    # broadcasting a single point against many vectors
    torch.testing.assert_close(latent.inner(z[0], u, v), torch.einsum("ni,ij,nj->n", u, M[0], v))


def test_riemannian_sgd_step_follows_inverse_metric(random_latent):
    decoder, latent = random_latent
    start = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    target = torch.linspace(0, 1, 6, dtype=torch.float64)
    z = geoopt.ManifoldParameter(start.clone(), manifold=latent)
    opt = geoopt.optim.RiemannianSGD([z], lr=0.1)
    loss = ((decoder.mean(z) - target) ** 2).sum()
    loss.backward()
    egrad = z.grad.clone()
    opt.step()
    M = explicit_metric(decoder, start.unsqueeze(0))[0]
    expected = start - 0.1 * torch.linalg.solve(M, egrad)
    torch.testing.assert_close(z.detach(), expected)


def test_riemannian_adam_first_step_is_a_unit_metric_step(random_latent):
    decoder, latent = random_latent
    start = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    z = geoopt.ManifoldParameter(start.clone(), manifold=latent)
    opt = geoopt.optim.RiemannianAdam([z], lr=0.01, eps=0.0)
    (decoder.mean(z) ** 2).sum().backward()
    egrad = z.grad.clone()
    opt.step()
    # Adam's first step with the metric norm (component_inner): -lr * rgrad / |rgrad|_M
    M = explicit_metric(decoder, start.unsqueeze(0))[0]
    rgrad = torch.linalg.solve(M, egrad)
    torch.testing.assert_close(z.detach(), start - 0.01 * rgrad / (rgrad @ M @ rgrad).sqrt())


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match="DecoderManifold"):
        LatentManifold(lambda z: z)
    with pytest.raises(ValueError, match="on_failure"):
        LatentManifold(analytic.sphere_manifold(), on_failure="ignore")
    latent = LatentManifold(analytic.sphere_manifold())
    with pytest.raises(ValueError, match="latent dimension"):
        latent.metric(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="lr > 0"):
        frechet_mean(latent, torch.ones(3, 2), lr=0)
    with pytest.raises(ValueError, match="weights"):
        frechet_mean(latent, torch.ones(3, 2), weights=torch.tensor([1.0, -1.0, 1.0]))


# ------------------------------------------------------------------ the sphere chart: closed forms
@pytest.fixture(scope="module")
def sphere():
    return LatentManifold(analytic.sphere_manifold(), method="ode")


POINTS = torch.tensor([[1.2, -0.4], [1.9, 0.3], [1.4, 0.8], [1.0, 0.5], [1.7, -0.2]], dtype=torch.float64)


def test_distance_and_its_gradient_match_great_circle(sphere):
    ends = POINTS[[2, 3, 2]]  # the last pair has x == y
    x, y = POINTS[:3].clone().requires_grad_(True), ends.clone().requires_grad_(True)
    d = sphere.dist(x, y)
    d.sum().backward()
    xr, yr = POINTS[:2].clone().requires_grad_(True), ends[:2].clone().requires_grad_(True)
    truth = analytic.great_circle_distance(xr, yr)
    truth.sum().backward()
    torch.testing.assert_close(d.detach()[:2], truth.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(x.grad[:2], xr.grad[:2], atol=1e-5, rtol=0)
    torch.testing.assert_close(y.grad[:2], yr.grad[:2], atol=1e-5, rtol=0)
    # x == y: zero distance and zero gradient, not NaN
    assert d[2].item() == 0 and torch.equal(x.grad[2], torch.zeros(2, dtype=torch.float64))


def test_logmap_and_expmap_are_inverse_on_the_sphere(sphere):
    x, y = POINTS[:2], POINTS[3:]
    log = sphere.logmap(x, y)
    torch.testing.assert_close(sphere.norm(x, log), analytic.great_circle_distance(x, y), atol=1e-6, rtol=0)
    back = sphere.expmap(x, log)
    assert analytic.great_circle_distance(back, y).max() < 1e-5


def karcher_mean_s2(points: torch.Tensor, iterations: int = 500) -> torch.Tensor:
    """The standard Karcher iteration on S^2 in R^3 with the exact maps
    Log_m(p) = theta / sin(theta) (p - cos(theta) m), Exp_m(v) = cos|v| m + sin|v| v / |v|."""
    m = points.mean(0) / points.mean(0).norm()
    for _ in range(iterations):
        cos = (points @ m).clamp(-1, 1)
        theta = torch.arccos(cos)
        scale = torch.where(theta > 0, theta / torch.sin(theta).clamp_min(1e-300), torch.ones_like(theta))
        v = ((points - cos[:, None] * m) * scale[:, None]).mean(0)
        n = v.norm()
        if n < 1e-14:
            break
        m = torch.cos(n) * m + torch.sin(n) * v / n
    return m


def test_frechet_mean_on_the_sphere_chart(sphere):
    truth = karcher_mean_s2(analytic.sphere_chart(POINTS))
    result = frechet_mean(sphere, POINTS, tol=1e-5)
    assert result.converged, result.reason
    error = torch.linalg.cross(analytic.sphere_chart(result.mean), truth).norm().arcsin()
    assert error < 1e-3
    # the Euclidean chart mean is visibly elsewhere: the test has teeth
    euclid = analytic.sphere_chart(POINTS.mean(0))
    assert torch.linalg.cross(euclid, truth).norm().arcsin() > 1e-2
    assert result.value == pytest.approx(analytic.great_circle_distance(result.mean, POINTS).pow(2).mean().item(), rel=1e-4)


def test_weighted_frechet_mean_of_two_points_is_on_the_great_circle(sphere):
    a, b = POINTS[0], POINTS[1]
    result = frechet_mean(sphere, torch.stack([a, b]), weights=torch.tensor([1.0, 3.0], dtype=torch.float64), tol=1e-6)
    assert result.converged, result.reason
    total = analytic.great_circle_distance(a, b)
    # the minimiser of (d(m,a)^2 + 3 d(m,b)^2)/4 on the geodesic lies a quarter of the way from b
    torch.testing.assert_close(analytic.great_circle_distance(result.mean, b), total / 4, atol=1e-4, rtol=0)
    torch.testing.assert_close(analytic.great_circle_distance(result.mean, a), 3 * total / 4, atol=1e-4, rtol=0)
    assert math.isfinite(result.seconds) and result.iterations >= 1


def test_frechet_mean_backtracks_an_overshooting_step(sphere):
    truth = karcher_mean_s2(analytic.sphere_chart(POINTS))
    result = frechet_mean(sphere, POINTS, lr=3.0, tol=1e-5)  # a full step of 6x the Karcher step overshoots
    assert result.converged, result.reason
    assert any(h["lr"] is not None and h["lr"] < 3.0 for h in result.history)
    values = [h["value"] for h in result.history]
    assert all(b < a for a, b in zip(values, values[1:]))  # monotone
    assert torch.linalg.cross(analytic.sphere_chart(result.mean), truth).norm().arcsin() < 1e-3
