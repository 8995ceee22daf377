"""NeuralCurve and SplineCurve: endpoints, exact derivatives, batching, stochman interplay."""

import matplotlib

matplotlib.use("Agg")

import pytest
import stochman
import torch
from stochman.curves import CubicSpline

import vaemanifold as vm
from vaemanifold import analytic

D64 = torch.float64


def randomised(curve):
    with torch.no_grad():
        curve.params.normal_()
    return curve


@pytest.fixture
def ends():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 2, generator=g, dtype=D64), torch.randn(3, 2, generator=g, dtype=D64)


def test_neural_curve_starts_as_the_line_and_keeps_its_endpoints(ends):
    z0, z1 = ends
    curve = vm.NeuralCurve(z0, z1)
    t = torch.linspace(0, 1, 7, dtype=D64)
    line = (1 - t[:, None]) * z0[:, None] + t[:, None] * z1[:, None]
    torch.testing.assert_close(curve(t), line)
    randomised(curve)
    points = curve(t)
    assert not torch.allclose(points, line)
    torch.testing.assert_close(points[:, 0], z0)
    torch.testing.assert_close(points[:, -1], z1)


@pytest.mark.parametrize("activation, features", [("tanh", 0), ("softplus", 0), ("sigmoid", 0), ("tanh", 3)])
def test_neural_curve_derivative_is_exact(ends, activation, features):
    curve = randomised(vm.NeuralCurve(*ends, hidden=(8, 8), activation=activation, features=features))
    t, h = torch.tensor([0.0, 0.3, 0.77, 1.0], dtype=D64), 1e-6
    numeric = (curve(t + h) - curve(t - h)) / (2 * h)
    torch.testing.assert_close(curve.deriv(t), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("features", [0, 2])
def test_neural_curve_batches_pairs_independently(ends, features):
    curve = randomised(vm.NeuralCurve(*ends, features=features))
    t = torch.linspace(0, 1, 5, dtype=D64)
    for b in range(3):
        torch.testing.assert_close(curve[b](t), curve(t)[b])
    assert curve[1:](t).shape == (2, 5, 2)
    per_pair_t = torch.rand(3, 4, dtype=D64)
    torch.testing.assert_close(curve(per_pair_t)[2], curve[2](per_pair_t[2]))


def test_neural_curve_refuses_non_smooth_activations(ends):
    with pytest.raises(ValueError, match="piece-wise linear"):
        vm.NeuralCurve(*ends, activation="relu")
    with pytest.raises(ValueError, match="unknown activation"):
        vm.NeuralCurve(*ends, activation="swishy")
    with pytest.raises(ValueError, match="hidden"):
        vm.NeuralCurve(*ends, hidden=())
    with pytest.raises(ValueError, match="params must have shape"):
        vm.NeuralCurve(*ends, params=torch.zeros(3, 5))
    for features in (-1, 1.5):
        with pytest.raises(ValueError, match="features must be a whole number >= 0"):
            vm.NeuralCurve(*ends, features=features)
    with pytest.raises(ValueError, match="features must be a whole number >= 0"):
        vm.connecting_geodesic(analytic.sphere_manifold(), *analytic.sphere_pairs(1), method="neural", features=-2)


def test_neural_curve_fourier_features_are_inputs_of_the_first_layer(ends):
    """psi(t) = ||z1 - z0|| MLP(2t - 1, sin(k pi t), cos(k pi t)): with only the first layer's sin(2 pi t)
    weight set, a one-unit identity-like network gives psi proportional to tanh(sin(2 pi t))."""
    z0, z1 = ends
    curve = vm.NeuralCurve(z0[:1], z1[:1], hidden=(1,), features=2)
    with torch.no_grad():
        curve.params.zero_()
        curve.params[0, 2] = 1.0  # first layer W (5, 1): inputs (2t-1, sin pi t, sin 2 pi t, cos pi t, cos 2 pi t)
        curve.params[0, 6:8] = torch.tensor([1.0, -1.0])  # last layer W (1, 2); biases stay 0
    t = torch.linspace(0, 1, 9, dtype=D64)
    s = t[:, None]
    expected = (1 - s) * z0[:1] + s * z1[:1] + s * (1 - s) * (z1 - z0)[:1].norm() * torch.tanh(torch.sin(2 * torch.pi * s)) * torch.tensor([1.0, -1.0], dtype=D64)
    torch.testing.assert_close(curve(t), expected)


def test_neural_curve_fit_and_constant_speed(ends):
    z0, z1 = ends
    curve = vm.NeuralCurve(z0[:1], z1[:1], hidden=(16,))
    t = torch.linspace(0, 1, 40, dtype=D64)
    target = (1 - t[:, None]) * z0[:1] + t[:, None] * z1[:1] + (t * (1 - t))[:, None] * torch.tensor([1.0, -2.0])
    curve.fit(t, target)
    assert (curve(t) - target).abs().max() < 1e-3
    # a line traversed at t^2 speed becomes (nearly) constant speed
    warped = vm.NeuralCurve(z0[:1], z1[:1], hidden=(16,))
    warped.fit(t, z0[:1] + (t**2)[:, None] * (z1 - z0)[:1])
    _, _, length = warped.constant_speed()
    speed = warped.deriv(torch.linspace(0.05, 0.95, 10, dtype=D64)).norm(dim=-1)
    assert speed.std() / speed.mean() < 0.02
    torch.testing.assert_close(length, (z1 - z0)[:1].norm(dim=-1), rtol=1e-3, atol=0)
    torch.testing.assert_close(warped.euclidean_length(N=500).to(D64), length, rtol=1e-3, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_neural_curve_fit_is_per_pair_and_accurate(dtype):
    """Half circles of radii 0.5 to 6 over one chord: each pair fitted to 1e-3 (stochman's batch
    L-BFGS reached 3.5e-3 to 4.4e-3 here), and a pair's fitted curve the same alone as in the batch
    (its weights may differ by rounding: a network's weights are not identifiable)."""
    t = torch.linspace(0, 1, 256, dtype=dtype)
    radius = torch.tensor([0.5, 2.0, 6.0], dtype=dtype).view(3, 1)
    angle = torch.pi * (1 - t)
    target = torch.stack([torch.cos(angle).expand(3, -1), radius * torch.sin(angle)], dim=-1)
    z0, z1 = target[:, 0], target[:, -1]
    torch.manual_seed(0)
    batch = vm.NeuralCurve(z0, z1, hidden=(8, 8))
    alone = batch[2]
    batch.fit(t, target)
    assert (batch(t) - target).norm(dim=-1).max() < 1e-3
    alone.fit(t, target[2])
    torch.testing.assert_close(alone(t), batch[2](t), rtol=0, atol=3e-4)


@pytest.mark.parametrize("family", [vm.NeuralCurve, vm.SplineCurve])
def test_fit_of_no_pairs_changes_nothing(family):
    empty = torch.zeros(0, 2, dtype=D64)
    curve = family(empty, empty.clone())
    curve.fit(torch.linspace(0, 1, 10, dtype=D64), torch.zeros(0, 10, 2, dtype=D64))
    assert curve.params.shape[0] == 0


def test_neural_curve_plots(ends):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    handles = vm.NeuralCurve(*ends).plot(ax=ax)
    assert len(handles) == 3
    plt.close(fig)


def test_neural_curve_inside_stochmans_energy_minimiser():
    """stochman's geodesic_minimizing_energy trains a NeuralCurve towards the great circle."""
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=3)
    truth = analytic.great_circle_distance(z0, z1)
    torch.manual_seed(0)  # psi's hidden weights are random: make the run independent of test order
    curve = vm.NeuralCurve(z0, z1)
    before = M.curve_length(curve)
    stochman.geodesic.geodesic_minimizing_energy(curve, M, max_iter=150, eval_grid=32)
    after = M.curve_length(curve)
    assert (after < before).all()
    assert ((after - truth) / truth).abs().max() < ((before - truth) / truth).abs().max() / 4


def test_spline_curve_is_c2_unlike_stochmans():
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.zeros(1, 2, dtype=D64), torch.ones(1, 2, dtype=D64)
    params = torch.randn(1, 6, 2, generator=g, dtype=D64)
    knot, h = 0.2, 1e-3  # an interior knot of a 6-node spline

    def second_derivative_jump(curve):
        def second(x):
            t = torch.tensor([x - h, x, x + h], dtype=D64)
            p = curve(t)
            return (p[0] - 2 * p[1] + p[2]) / h**2

        return (second(knot + 2 * h) - second(knot - 2 * h)).abs().max()

    ours = vm.SplineCurve(z0, z1, num_nodes=6, params=params)
    theirs = CubicSpline(z0, z1, num_nodes=6, params=params)
    assert second_derivative_jump(ours) < 0.05
    assert second_derivative_jump(theirs) > 0.1  # stochman issue #29


def test_spline_curve_vectorised_evaluation_matches_stochmans_loop(ends):
    curve = randomised(vm.SplineCurve(*ends, num_nodes=5))
    t = torch.rand(3, 9, dtype=D64)
    coeffs = curve._get_coeffs()
    torch.testing.assert_close(curve._eval_polynomials(t, coeffs), CubicSpline._eval_polynomials(curve, t, coeffs))
    torch.testing.assert_close(curve[1](t[1]), curve(t)[1])


def test_spline_fit_is_exact_least_squares(ends):
    target = randomised(vm.SplineCurve(*ends, num_nodes=7))
    t = torch.linspace(0, 1, 50, dtype=D64)
    fitted = vm.SplineCurve(*ends, num_nodes=7)
    residual = fitted.fit(t, target(t).detach())
    assert residual < 1e-20
    torch.testing.assert_close(fitted.params, target.params)
    h = 1e-6
    torch.testing.assert_close(fitted.deriv(t[1:-1]), (fitted(t[1:-1] + h) - fitted(t[1:-1] - h)) / (2 * h))


def test_float32_spline_with_large_parameters_keeps_its_ends_and_matches_float64():
    """Its power coefficients cancel; evaluated in float32, a curve with parameters of 1e4 (what
    Gauss-Newton steps damped by the sample points reach at d = 32) misses its ends by ~1e-3."""
    generator = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(2, 2, 32, generator=generator)
    params = 1e4 * torch.randn(2, 20, 32, generator=generator)
    curve = vm.SplineCurve(z0, z1, num_nodes=20, params=params)
    exact = vm.SplineCurve(z0.double(), z1.double(), num_nodes=20, params=params.double())
    t = torch.linspace(0, 1, 257)
    points = curve(t)
    assert points.dtype == torch.float32 and curve.deriv(t).dtype == torch.float32
    assert (points[:, 0] - z0).abs().max() < 1e-5 and (points[:, -1] - z1).abs().max() < 1e-5
    torch.testing.assert_close(points.double(), exact(t.double()), rtol=1e-6, atol=1e-5)
    basis32 = curve.basis.float().double()  # the same basis rounded to float32, as stochman keeps it
    coeffs = torch.einsum("ck,bkd->bcd", basis32, params.double())
    assert coeffs.view(2, 19, 4, 32)[:, -1].sum(dim=1).abs().max() > 1e-4  # would miss the end t = 1
