"""The Gauss-Newton machinery against ground truth: dense linear algebra, autograd, closed-form geodesics."""

import pytest
import torch

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.curves import interpolating_spline
from vaemanifold.solvers import gauss_newton, least_squares
from vaemanifold.solvers.graph import GraphSolver
from vaemanifold.solvers.least_squares import (
    block_tridiagonal_matmul,
    node_system,
    node_value,
    solve_block_tridiagonal,
)

D64 = torch.float64


def dense(diag: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """The (b, m d, m d) matrix of block-tridiagonal (diag, upper)."""
    b, m, d, _ = diag.shape
    A = diag.new_zeros(b, m * d, m * d)
    for k in range(m):
        A[:, k * d : (k + 1) * d, k * d : (k + 1) * d] = diag[:, k]
        if k + 1 < m:
            A[:, k * d : (k + 1) * d, (k + 1) * d : (k + 2) * d] = upper[:, k]
            A[:, (k + 1) * d : (k + 2) * d, k * d : (k + 1) * d] = upper[:, k].transpose(-1, -2)
    return A


@pytest.mark.parametrize("method", ["cyclic reduction", "dense Cholesky"])
@pytest.mark.parametrize("m, d", [(1, 2), (2, 3), (3, 2), (6, 1), (15, 2), (40, 4)])
def test_block_tridiagonal_solve_matches_a_dense_solve(monkeypatch, method, m, d):
    monkeypatch.setattr(least_squares, "DENSE_SOLVE", 0 if method == "cyclic reduction" else 10**9)
    g = torch.Generator().manual_seed(m * 10 + d)
    J = torch.randn(3, m + 1, 5, d, generator=g, dtype=D64)
    diag = 2 * J[:, :-1].transpose(-1, -2) @ J[:, :-1] + 0.01 * torch.eye(d, dtype=D64)
    upper = -(J[:, :-2].transpose(-1, -2) @ J[:, 1:-1])
    rhs = torch.randn(3, m, d, generator=g, dtype=D64)
    x = solve_block_tridiagonal(diag, upper, rhs)
    A = dense(diag, upper)
    torch.testing.assert_close(x.flatten(1), torch.linalg.solve(A, rhs.flatten(1)))
    product = block_tridiagonal_matmul(diag, upper, x.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(product, rhs)


def test_dense_block_tridiagonal_solve_marks_a_pair_that_is_not_positive_definite():
    diag = torch.eye(2, dtype=D64).expand(2, 3, 2, 2).clone()
    diag[1, 1] = -torch.eye(2, dtype=D64)
    upper = torch.zeros(2, 2, 2, 2, dtype=D64)
    rhs = torch.ones(2, 3, 2, dtype=D64)
    x = solve_block_tridiagonal(diag, upper, rhs)  # small: the dense path
    torch.testing.assert_close(x[0], rhs[0])
    assert torch.isnan(x[1]).all()


def test_node_system_is_the_gauss_newton_model_of_the_discrete_energy():
    """rhs = -grad S / 2 and (diag, upper) = J_r^T J_r of the residuals r_i = f(x_i+1) - f(x_i), by autograd."""
    M = analytic.random_mlp_manifold(2, dtype=D64)
    g = torch.Generator().manual_seed(0)
    points = torch.randn(2, 7, 2, generator=g, dtype=D64)
    system = node_system(M, points)
    for b in range(2):
        ends = points[b, [0, -1]]

        def residuals(inner: torch.Tensor) -> torch.Tensor:
            nodes = torch.cat([ends[:1], inner.view(-1, 2), ends[1:]])
            return M.embed(nodes).diff(dim=0).flatten()

        inner = points[b, 1:-1].flatten()
        r = residuals(inner)
        Jr = torch.autograd.functional.jacobian(residuals, inner)
        torch.testing.assert_close(system.value[b], (r**2).sum())
        torch.testing.assert_close(system.rhs[b].flatten(), -(Jr.T @ r))
        torch.testing.assert_close(dense(system.diag[b : b + 1], system.upper[b : b + 1])[0], Jr.T @ Jr)
    torch.testing.assert_close(node_value(M, points), system.value)


def test_interpolating_spline_passes_through_the_points_is_c2_and_exact_for_cubics():
    t = torch.linspace(0, 1, 9, dtype=D64)
    cubic = torch.stack([t**3 - t, 2 * t**2 + 1], dim=-1).unsqueeze(0)  # (1, 9, 2)
    curve = interpolating_spline(cubic)
    torch.testing.assert_close(curve(t).reshape(1, 9, 2), cubic)
    s = torch.linspace(0, 1, 101, dtype=D64)
    torch.testing.assert_close(curve(s).reshape(1, 101, 2), torch.stack([s**3 - s, 2 * s**2 + 1], -1)[None])
    wiggly = torch.randn(1, 9, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
    spline = interpolating_spline(wiggly)
    h = 1e-4
    for knot in t[1:-1]:
        around = torch.tensor([knot - 2 * h, knot - h, knot, knot + h, knot + 2 * h], dtype=D64)
        x = spline(around).reshape(5, 2)
        left, right = (x[2] - 2 * x[1] + x[0]) / h**2, (x[4] - 2 * x[3] + x[2]) / h**2
        torch.testing.assert_close(left, right, rtol=0, atol=1e-2 * (1 + left.abs().max()))


def test_gauss_newton_converges_at_once_from_the_geodesic():
    M = analytic.random_mlp_manifold(2, dtype=D64)
    g = torch.Generator().manual_seed(2)
    z0, z1 = 2 * torch.randn(3, 2, generator=g, dtype=D64), 2 * torch.randn(3, 2, generator=g, dtype=D64)
    first = vm.connecting_geodesic(M, z0, z1, method="gauss_newton")
    cold = vm.connecting_geodesic(M, z0, z1, method="gauss_newton", levels=(64,))
    warm = vm.connecting_geodesic(M, z0, z1, method="gauss_newton", levels=(64,), init=first.curve)
    assert warm.converged.all() and warm.iterations <= 2 < cold.iterations
    torch.testing.assert_close(warm.length, first.length, rtol=1e-5, atol=0)


def test_gauss_newton_reports_a_non_finite_decoder():
    def broken(z: torch.Tensor) -> torch.Tensor:
        out = torch.cat([z, z**2], dim=-1)
        return torch.where(z[..., :1] > 0.5, torch.full_like(out, float("nan")), out)

    M = vm.DecoderManifold(broken, latent_dim=2)
    z0 = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=D64)
    z1 = torch.tensor([[0.2, 0.3], [1.0, 0.0]], dtype=D64)
    result = vm.connecting_geodesic(M, z0, z1, method="gauss_newton")
    assert bool(result.converged[0]) and not bool(result.converged[1])
    assert "non-finite" in result.reasons[1]


def test_gauss_newton_names_non_finite_decoder_values_met_on_the_way():
    """The straight line is finite, but the geodesic bends around a bump into a region where the decoder is NaN."""

    def decoder(z: torch.Tensor) -> torch.Tensor:
        bump = 5 * torch.exp(-((z[..., :1] + 0.1) ** 2 + z[..., 1:] ** 2) / 0.1)
        out = torch.cat([z, bump], dim=-1)
        return torch.where(z[..., :1] > 0.3, torch.full_like(out, float("nan")), out)

    M = vm.DecoderManifold(decoder, latent_dim=2)
    z0, z1 = torch.tensor([[0.0, -1.0]], dtype=D64), torch.tensor([[0.0, 1.0]], dtype=D64)
    result = vm.connecting_geodesic(M, z0, z1, method="gauss_newton")
    assert not result.converged[0]
    assert "non-finite" in result.reasons[0], result.reasons[0]


def test_gauss_newton_options_are_validated():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(1)
    for options, match in (
        ({"levels": (32, 16)}, "levels"),
        ({"levels": (1,)}, "levels"),
        ({"tol": 0}, "tol"),
        ({"iterations": 0}, "iterations"),
    ):
        with pytest.raises(ValueError, match=match):
            vm.connecting_geodesic(M, z0, z1, method="gauss_newton", **options)


def test_gauss_newton_is_the_default_everywhere_and_ode_starts_from_it():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=3)
    assert vm.DEFAULT_METHOD == "gauss_newton"
    result = vm.connecting_geodesic(M, z0, z1)
    assert result.method == "gauss_newton" and result.converged.all()
    torch.testing.assert_close(vm.distance(M, z0, z1), result.length)
    D = vm.distance_matrix(M, torch.cat([z0, z1]))
    torch.testing.assert_close(D[0, 2], result.length[0], rtol=1e-5, atol=0)
    curve, success = M.connecting_geodesic(z0, z1)
    assert success and isinstance(curve, vm.curves.HermiteCurve)
    assert vm.SOLVERS["ode"]().init_solver == "gauss_newton"


@pytest.mark.parametrize("name", ["neural", "spline"])
def test_curve_families_take_gauss_newton_steps_by_default(name):
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=4)
    truth = analytic.great_circle_distance(z0, z1)
    assert vm.SOLVERS[name]().optimizer == "gauss-newton"
    result = vm.connecting_geodesic(M, z0, z1, method=name)
    assert result.converged.all(), result.reasons
    assert (result.length / truth - 1).abs().max() < 1e-4


def test_spline_lbfgs_runs_one_optimiser_per_pair():
    """One line search per pair: a pair's L-BFGS result does not depend on its batch-mates."""
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(3, seed=4)
    batch = vm.connecting_geodesic(M, z0, z1, method="spline", optimizer="lbfgs")
    alone = vm.connecting_geodesic(M, z0[1:2], z1[1:2], method="spline", optimizer="lbfgs")
    assert batch.converged.all()
    torch.testing.assert_close(alone.length[0], batch.length[1], rtol=1e-9, atol=0)
    truth = analytic.great_circle_distance(z0, z1)
    assert (batch.length / truth - 1).abs().max() < 1e-3


def test_a_curve_its_nodes_do_not_resolve_is_not_reported_converged():
    # phi is periodic in the sphere chart: the nodes may step from phi = -pi to +pi, two chart
    # points with one image, while the curve between them sweeps a whole circle of latitude
    z0 = torch.tensor([[1.5429, -1.9107]], dtype=torch.float64)
    z1 = torch.tensor([[1.8014, 1.6608]], dtype=torch.float64)
    result = vm.connecting_geodesic(analytic.sphere_manifold(), z0, z1)
    assert result.length.item() > 10 * analytic.great_circle_distance(z0, z1).item()
    assert not bool(result.converged[0])
    assert "do not resolve it" in result.reasons[0]


def test_a_pair_whose_step_is_not_finite_stops_with_that_reason_and_the_others_go_on():
    from vaemanifold.curves import line_points
    from vaemanifold.solvers.gauss_newton import _node_points, _node_step
    from vaemanifold.solvers.least_squares import gauss_newton_descent

    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=3)
    t = torch.linspace(0, 1, 17, dtype=D64)
    start = line_points(z0, z1, t)[:, 1:-1].reshape(2, -1)

    def singular_for_pair_1(params, index, system, reach):
        delta, slope, curvature = _node_step(params, index, system, reach)
        delta = torch.where((index == 1).unsqueeze(1), torch.full_like(delta, float("nan")), delta)
        return delta, slope, curvature

    result = gauss_newton_descent(M, start, _node_points(z0, z1, 16), singular_for_pair_1, 5e-4, 50)
    assert bool(result.converged[0]) and result.reasons[0] is None
    assert not bool(result.converged[1]) and "step was not finite" in result.reasons[1]


def test_extra_levels_refine_only_the_pairs_their_nodes_do_not_resolve():
    # at 4 segments the long arc's midpoints lengthen its data-space polyline by about 1.05%
    # (above REFINE_STRETCH), the short one's by 6e-5
    M = analytic.sphere_manifold()
    z0 = torch.tensor([[1.0, -1.0], [1.5, 0.0]], dtype=D64)
    z1 = torch.tensor([[2.0, 1.2], [1.6, 0.15]], dtype=D64)
    truth = analytic.great_circle_distance(z0, z1)
    fixed = vm.connecting_geodesic(M, z0, z1, levels=(4,), extra_levels=0)
    adaptive = vm.connecting_geodesic(M, z0, z1, levels=(4,), extra_levels=2)
    assert fixed.converged.all() and adaptive.converged.all()
    error_fixed, error_adaptive = (fixed.length / truth - 1).abs(), (adaptive.length / truth - 1).abs()
    assert error_adaptive[0] < error_fixed[0] / 3  # refined at 8 segments
    torch.testing.assert_close(adaptive.length[1], fixed.length[1], rtol=1e-12, atol=0)  # left as it was
    assert adaptive.iterations > fixed.iterations
    with pytest.raises(ValueError, match="extra_levels"):
        vm.connecting_geodesic(M, z0, z1, extra_levels=-1)


def test_graph_start_takes_per_pair_the_lower_energy_of_the_line_and_the_graph_path(monkeypatch):
    M = analytic.sphere_manifold(analytic.sphere_grid(20, 30))
    z0, z1 = analytic.sphere_pairs(12, seed=1)
    t = torch.linspace(0, 1, 17, dtype=D64)
    line = gauss_newton.line_points(z0, z1, t)
    path = gauss_newton.sample_curve(GraphSolver(refine=None).solve(M, z0, z1).curve, t)
    start = gauss_newton.lowest_start(M, z0, z1, t)
    on_line, on_path = node_value(M, line), node_value(M, path)
    assert (on_path < on_line).any() and (on_line < on_path).any()  # both starts occur among these pairs
    torch.testing.assert_close(start, torch.where((on_path < on_line).view(-1, 1, 1), path, line))
    monkeypatch.setattr(gauss_newton, "GRAPH_START_POINTS", 599)  # more codes than that: the line
    torch.testing.assert_close(gauss_newton.lowest_start(M, z0, z1, t), line)
    torch.testing.assert_close(gauss_newton.lowest_start(analytic.sphere_manifold(), z0, z1, t), line)


@pytest.mark.parametrize("by", ["energy", "length"])
def test_a_third_candidate_is_taken_where_it_is_the_lowest(by):
    M = analytic.sphere_manifold(analytic.sphere_grid(20, 30))
    z0, z1 = analytic.sphere_pairs(12, seed=1)
    t = torch.linspace(0, 1, 17, dtype=D64)
    two = gauss_newton.lowest_start(M, z0, z1, t, by=by)  # the line or the graph path
    geodesic = gauss_newton.sample_curve(vm.connecting_geodesic(M, z0, z1, levels=(16,), extra_levels=0).curve, t)
    torch.testing.assert_close(gauss_newton.lowest_start(M, z0, z1, t, also=geodesic, by=by), geodesic)
    line = gauss_newton.line_points(z0, z1, t)
    zigzag = line + 0.3 * torch.sin(8 * torch.pi * t).view(1, -1, 1)  # the same ends, a longer way
    torch.testing.assert_close(gauss_newton.lowest_start(M, z0, z1, t, also=zigzag, by=by), two)
    partial = vm.DecoderManifold(lambda z: torch.where(z[..., :1] > 1.5, float("nan"), z), latent_dim=2)
    a, b = torch.zeros(3, 2, dtype=D64), torch.ones(3, 2, dtype=D64)
    line = gauss_newton.line_points(a, b, t)
    through_the_hole = line + torch.tensor([1.0, -1.0], dtype=D64) * torch.sin(torch.pi * t).view(1, -1, 1)
    torch.testing.assert_close(gauss_newton.lowest_start(partial, a, b, t, also=through_the_hole, by=by), line)


def test_by_length_an_unevenly_traversed_geodesic_is_not_passed_over():
    M = analytic.sphere_manifold(analytic.sphere_grid(20, 30))
    z0, z1 = analytic.sphere_pairs(12, seed=1)
    t = torch.linspace(0, 1, 17, dtype=D64)
    geodesic = vm.connecting_geodesic(M, z0, z1, levels=(16,), extra_levels=0).curve
    uneven = gauss_newton.sample_curve(geodesic, t**3)  # the same curve, most of it in the last steps
    by_length = gauss_newton.lowest_start(M, z0, z1, t, also=uneven, by="length")
    by_energy = gauss_newton.lowest_start(M, z0, z1, t, also=uneven, by="energy")
    torch.testing.assert_close(by_length, uneven)
    taken = (by_energy == uneven).all(dim=2).all(dim=1)
    assert not taken.all()  # its energy counts the uneven speed against it
    with pytest.raises(ValueError, match="by"):
        gauss_newton.lowest_start(M, z0, z1, t, by="time")


def test_either_start_reaches_the_great_circle():
    M = analytic.sphere_manifold(analytic.sphere_grid(20, 30))
    z0, z1 = analytic.sphere_pairs(12, seed=1)
    truth = analytic.great_circle_distance(z0, z1)
    for graph_start in (True, False):
        result = vm.connecting_geodesic(M, z0, z1, graph_start=graph_start)
        assert result.converged.all(), result.reasons
        torch.testing.assert_close(result.length, truth, rtol=1e-4, atol=0)
