"""Every registered solver against ground truth, and the entry point's contract.

Solvers are taken from vm.SOLVERS, so a newly registered one is tested here
automatically (give it a tolerance below if 1% is not its documented accuracy).
"""

import pytest
import torch

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.solvers import GeodesicSolver, SolverOutput
from vaemanifold.solvers.least_squares import NodeSystem, block_tridiagonal_matmul

from fitted_networks import LINEAR_MAP, linear_network, mlp_network, solver_options

D64 = torch.float64
#: Relative length tolerance against the truth, per solver (default 1%). The graph
#: solver's paths are polylines through grid points smoothed by a spline: a few %.
TOLERANCE = {"graph": 0.03}
#: Options per solver on the sphere (default: none). A chart grid is anisotropic
#: in the metric, so the graph needs more neighbours than its default 10.
OPTIONS = {"graph": {"k": 24}}
#: How much longer than the straight line a solver's curve may be (default 0.5%).
#: An unrefined graph path is a discrete approximation and may lose to the line.
LINE_SLACK = {"graph": 0.10}
#: The straight line is no geodesic: it is only checked to be no shorter than the truth.
NOT_GEODESIC = {"linear"}
SOLVER_NAMES = sorted(vm.SOLVERS)


def sphere_with_latents() -> vm.DecoderManifold:
    """Sphere chart with a 40 x 60 grid of chart points (for the graph solver)."""
    return analytic.sphere_manifold(latents=analytic.sphere_grid())


@pytest.fixture(scope="module")
def sphere_results():
    M = sphere_with_latents()
    z0, z1 = analytic.sphere_pairs(4, seed=1)
    truth = analytic.great_circle_distance(z0, z1)
    results = {
        name: vm.connecting_geodesic(M, z0, z1, method=name, **solver_options(name, OPTIONS)) for name in SOLVER_NAMES
    }
    return results, truth, (z0, z1)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_solver_recovers_great_circle_distance(sphere_results, name):
    results, truth, _ = sphere_results
    result = results[name]
    error = result.length / truth - 1
    if name in NOT_GEODESIC:
        assert (error > -1e-6).all()
        return
    assert result.converged.all(), result.reasons
    assert error.abs().max() < TOLERANCE.get(name, 0.01), f"{name}: relative errors {error.tolist()}"


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_result_contract(sphere_results, name):
    result, _, (z0, z1) = sphere_results[0][name], *sphere_results[1:]
    assert isinstance(result, vm.GeodesicResult) and result.method == name
    assert result.length.shape == result.energy.shape == result.converged.shape == (4,)
    assert result.converged.dtype == torch.bool and len(result.reasons) == 4
    assert result.seconds >= 0 and result.iterations >= 0
    assert (result.grid_change < 1e-3).all()  # the measuring grid resolves the curve
    assert (result.energy >= result.length**2 * (1 - 1e-6)).all()  # Cauchy-Schwarz
    t = torch.tensor([0.0, 1.0], dtype=D64)
    ends = result.curve(t).reshape(4, 2, 2)
    torch.testing.assert_close(ends[:, 0], z0, atol=1e-5, rtol=0)
    torch.testing.assert_close(ends[:, 1], z1, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(set(SOLVER_NAMES) - {"graph"}))
def test_linear_decoder_geodesics_are_lines(name):
    A = torch.tensor(LINEAR_MAP, dtype=D64)
    M = analytic.linear_manifold(A)
    z0 = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=D64)
    z1 = torch.tensor([[1.0, 1.0], [-0.5, 0.3]], dtype=D64)
    result = vm.connecting_geodesic(M, z0, z1, method=name, **solver_options(name, {}, linear_network))
    truth = ((z1 - z0) @ A.T).norm(dim=-1)
    torch.testing.assert_close(result.length, truth, rtol=1e-3, atol=0)


@pytest.mark.parametrize("name", sorted(set(SOLVER_NAMES) - {"linear"}))
def test_no_solver_is_longer_than_the_line_on_a_curved_decoder(name):
    g = torch.Generator().manual_seed(2)
    M = analytic.random_mlp_manifold(2, dtype=D64)
    M.latents = torch.randn(600, 2, generator=g, dtype=D64) * 1.5
    z0, z1 = torch.randn(3, 2, generator=g, dtype=D64), torch.randn(3, 2, generator=g, dtype=D64)
    line = vm.connecting_geodesic(M, z0, z1, method="linear").length
    result = vm.connecting_geodesic(M, z0, z1, method=name, **solver_options(name, {}, mlp_network))
    assert (result.length <= line * (1 + LINE_SLACK.get(name, 0.005))).all(), (result.length / line).tolist()


def test_distance_is_symmetric_and_matches_distance_matrix():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(3, seed=4)
    forward = vm.distance(M, z0, z1, method="spline")
    backward = vm.distance(M, z1, z0, method="spline")
    torch.testing.assert_close(forward, backward, rtol=1e-3, atol=0)
    Z = torch.cat([z0, z1[:1]])
    D = vm.distance_matrix(M, Z, method="spline", batch_size=4)
    assert D.shape == (4, 4)
    torch.testing.assert_close(D, D.T)
    assert (D.diagonal() == 0).all()
    # every decision is per pair, so batch-mates do not move a pair's result
    torch.testing.assert_close(D[:3, :3], vm.distance_matrix(M, z0, method="spline"), rtol=1e-6, atol=0)
    torch.testing.assert_close(D, analytic.great_circle_distance(Z[:, None], Z[None]), rtol=1e-2, atol=1e-7)


def test_neural_solver_options_fd_energy_and_lbfgs():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=5)
    truth = analytic.great_circle_distance(z0, z1)
    for options in (
        {"energy": "fd", "points": 64}, {"optimizer": "lbfgs", "sampling": "grid"}, {"sampling": "grid"}, {"scaling": "diagonal"},
        {"scaling": "points"},  # more weights than sampled coordinates on every level: the floor keeps it solvable
    ):
        result = vm.connecting_geodesic(M, z0, z1, method="neural", **options)
        assert result.converged.all(), (options, result.reasons)
        assert (result.length / truth - 1).abs().max() < 0.01, options


def test_unconverged_solvers_say_so_and_distance_policies():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2, seed=6)
    two_steps = {"method": "neural", "optimizer": "adam", "iterations": 2}
    result = vm.connecting_geodesic(M, z0, z1, **two_steps)
    assert not result.converged.any()
    assert all("tol" in reason for reason in result.reasons)
    with pytest.raises(RuntimeError, match="did not converge"):
        vm.distance(M, z0, z1, **two_steps)
    assert vm.distance(M, z0, z1, on_failure="nan", **two_steps).isnan().all()
    torch.testing.assert_close(vm.distance(M, z0, z1, on_failure="keep", **two_steps), result.length)
    cut = vm.connecting_geodesic(M, z0, z1, method="gauss_newton", levels=(8, 16), tol=1e-14, iterations=1)
    assert not cut.converged.any() and all("still changing" in reason for reason in cut.reasons)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_zero_pairs_give_an_empty_result(name):
    M = sphere_with_latents()
    empty, options = torch.zeros(0, 2, dtype=D64), solver_options(name, OPTIONS)
    result = vm.connecting_geodesic(M, empty, empty.clone(), method=name, **options)
    assert len(result) == 0 and result.length.shape == result.converged.shape == (0,) and result.reasons == []
    assert "pairs=0" in repr(result)
    assert vm.distance(M, empty, empty.clone(), method=name, **options).shape == (0,)


def test_endpoints_take_the_decoders_dtype():
    M = analytic.random_mlp_manifold(2)  # float32 weights
    z0 = torch.zeros(2, 2, dtype=D64)
    z1 = torch.tensor([[1.0, 0.5], [-1.0, 2.0]], dtype=D64)
    result = vm.connecting_geodesic(M, z0, z1)
    assert result.length.dtype == torch.float32 and result.converged.all()
    same = vm.connecting_geodesic(M, z0.float(), z1.float())
    torch.testing.assert_close(result.length, same.length)


def test_stochman_style_method_on_the_manifold():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(1, seed=7)
    curve, success = M.connecting_geodesic(z0[0], z1[0], method="spline")
    assert success is True
    torch.testing.assert_close(M.curve_length(curve), analytic.great_circle_distance(z0, z1), rtol=1e-2, atol=0)


def test_solver_instances_and_custom_registration():
    class Halfway(GeodesicSolver):
        name = "test-halfway"

        def solve(self, manifold, z0, z1, init=None):
            curve = vm.SplineCurve(z0, z1, num_nodes=3, requires_grad=False)
            return SolverOutput(curve, torch.zeros(len(z0), dtype=torch.bool), 1, ["by design"] * len(z0))

    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2)
    result = vm.connecting_geodesic(M, z0, z1, method=Halfway())
    assert not result.converged.any() and result.reasons == ["by design", "by design"]
    vm.register(Halfway)
    try:
        assert vm.connecting_geodesic(M, z0, z1, method="test-halfway").method == "test-halfway"
    finally:
        del vm.SOLVERS["test-halfway"]


def test_bad_input_gives_clear_errors():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(2)
    with pytest.raises(ValueError, match="unknown method 'nope'; valid: .*neural"):
        vm.connecting_geodesic(M, z0, z1, method="nope")
    with pytest.raises(ValueError, match="different numbers of points"):
        vm.connecting_geodesic(M, z0, torch.zeros(3, 2, dtype=D64))
    with pytest.raises(ValueError, match="NaN or infinite"):
        vm.connecting_geodesic(M, z0, torch.full((2, 2), float("inf"), dtype=D64))
    with pytest.raises(ValueError, match="latent dimension 3"):
        vm.connecting_geodesic(M, torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="unknown sampling"):
        vm.connecting_geodesic(M, z0, z1, method="neural", sampling="sobol")
    with pytest.raises(ValueError, match="unknown scaling"):
        vm.connecting_geodesic(M, z0, z1, method="spline", scaling="marquardt")
    with pytest.raises(ValueError, match="piece-wise linear"):
        vm.connecting_geodesic(M, z0, z1, method="neural", activation="relu")
    with pytest.raises(ValueError, match="cannot be applied to a solver instance"):
        vm.connecting_geodesic(M, z0, z1, method=vm.SOLVERS["linear"](), iterations=3)
    with pytest.raises(TypeError, match="DecoderManifold"):
        vm.connecting_geodesic(object(), z0, z1)
    with pytest.raises(ValueError, match="on_failure"):
        vm.distance(M, z0, z1, on_failure="ignore")


def test_measuring_in_chunks_gives_what_measuring_at_once_does(monkeypatch):
    from vaemanifold import geodesic

    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(5, seed=1)
    curve = vm.connecting_geodesic(M, z0, z1).curve
    at_once = geodesic.measure(M, curve, grid=64)
    monkeypatch.setattr(geodesic, "MEASURE_CHUNK", 2)  # chunks of 2, 2 and 1 curves
    in_chunks = geodesic.measure(M, curve, grid=64)
    for whole, parts in zip(at_once, in_chunks):
        torch.testing.assert_close(parts, whole, rtol=1e-12, atol=0)
    # and the great-circle distances, which the 64-point polylines approach from below
    truth = analytic.great_circle_distance(z0, z1)
    assert ((in_chunks[0] / truth - 1).abs() < 1e-3).all()


def test_diagonal_damping_does_not_depend_on_how_the_parameters_are_scaled():
    """Marquardt's damping: a step in rescaled parameters is the rescaled step (up to the small floor)."""
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(2, 6, 6, generator=generator, dtype=torch.float64)
    H = A @ A.transpose(1, 2) + torch.eye(6, dtype=torch.float64)
    g = torch.randn(2, 6, generator=generator, dtype=torch.float64)
    S = torch.diag_embed(torch.tensor([[0.5, 1.0, 2.0, 1.0, 1.5, 0.7]] * 2, dtype=torch.float64))
    reach = torch.ones(2, dtype=torch.float64)

    def steps(scaling: str) -> tuple[torch.Tensor, torch.Tensor]:
        solver = vm.SOLVERS["neural"](damping=1.0)  # damping as large as H: the scaling decides
        step = torch.linalg.solve(H + solver._damping(H, reach, scaling), g.unsqueeze(-1))
        scaled_H = S @ H @ S
        scaled = torch.linalg.solve(scaled_H + solver._damping(scaled_H, reach, scaling), S @ g.unsqueeze(-1))
        return step, S @ scaled

    marquardt, rescaled = steps("diagonal")
    assert (marquardt - rescaled).abs().max() < 3e-2 * marquardt.abs().max()  # 0.8% here, from the floor
    levenberg, rescaled = steps("identity")
    assert (levenberg - rescaled).abs().max() > 0.1 * levenberg.abs().max()


def test_points_damping_does_not_depend_on_how_the_curve_is_parametrised():
    """'points' damps ||G delta||^2: in parameters mixed by any invertible T (G -> G T) the step is T^-1 times
    the step, so the sample points move the same; Levenberg's identity damping moves them differently."""
    generator = torch.Generator().manual_seed(1)
    b, m, d, P = 2, 9, 2, 6
    G = torch.randn(b, m, d, P, generator=generator, dtype=torch.float64)
    J = torch.randn(b, m + 1, 3, d, generator=generator, dtype=torch.float64)
    diag = J.transpose(-1, -2) @ J + 0.1 * torch.eye(d, dtype=torch.float64)
    upper = 0.3 * torch.randn(b, m - 1, d, d, generator=generator, dtype=torch.float64)
    system = NodeSystem(torch.zeros(b, dtype=torch.float64), diag[:, :m], upper, torch.randn(b, m, d, generator=generator, dtype=torch.float64))
    T = torch.randn(P, P, generator=generator, dtype=torch.float64) + 3 * torch.eye(P, dtype=torch.float64)
    reach = torch.ones(b, dtype=torch.float64)
    solver = vm.SOLVERS["spline"](damping=1.0)  # as large as H: the damping decides the step

    def moved_points(G: torch.Tensor, scaling: str) -> torch.Tensor:
        H = torch.einsum("bmdp,bmdq->bpq", G, block_tridiagonal_matmul(system.diag, system.upper, G))
        g = torch.einsum("bmdp,bmd->bp", G, system.rhs)
        if scaling == "points":
            delta, slope, curvature = solver._points_step(G, system, reach)
            torch.testing.assert_close(slope, (g * delta).sum(dim=-1))  # the model's slope and curvature:
            torch.testing.assert_close(curvature, (delta * (H @ delta.unsqueeze(-1)).squeeze(-1)).sum(dim=-1))
        else:
            delta = torch.linalg.solve(H + solver._damping(H, reach, scaling), g.unsqueeze(-1)).squeeze(-1)
        return torch.einsum("bmdp,bp->bmd", G, delta)

    mixed = torch.einsum("bmdp,pq->bmdq", G, T)
    points, mixed_points = moved_points(G, "points"), moved_points(mixed, "points")
    assert (points - mixed_points).abs().max() < 1e-4 * points.abs().max()  # up to POINTS_FLOOR
    levenberg, mixed_levenberg = moved_points(G, "identity"), moved_points(mixed, "identity")
    assert (levenberg - mixed_levenberg).abs().max() > 0.1 * levenberg.abs().max()


def test_spline_damps_coarse_levels_by_identity_and_the_last_by_points():
    defaults = vm.SOLVERS["spline"]()
    assert (defaults.coarse_scaling, defaults.scaling) == ("identity", "points")
    assert vm.SOLVERS["spline"](scaling="diagonal").coarse_scaling == "identity"
    assert vm.SOLVERS["neural"](scaling="diagonal").coarse_scaling == "diagonal"  # neural: as scaling
    with pytest.raises(ValueError, match="unknown coarse_scaling"):
        vm.SOLVERS["spline"](coarse_scaling="marquardt")
