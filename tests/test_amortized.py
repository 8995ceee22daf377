"""The amortised geodesic network: exact ends, symmetry, exact velocities, what it learns, files, refusals."""

import pytest
import torch

import vaemanifold as vm
from vaemanifold import analytic
from vaemanifold.amortized import NetworkError

from fitted_networks import sphere_network


def random_network(d: int = 2, seed: int = 0, heads: int = 1) -> vm.GeodesicNetwork:
    """A network whose curves are far from straight lines (its last layer is not zero)."""
    torch.manual_seed(seed)
    net = vm.GeodesicNetwork(d, hidden=(16, 16), modes=6, heads=heads).double()
    torch.nn.init.normal_(net.layers[-1].weight, std=0.5)
    return net


@pytest.mark.parametrize("head", [None, 0, 2])
def test_the_ends_are_exact_and_the_curve_from_z1_is_the_reverse(head):
    net = random_network(heads=1 if head is None else 3)
    z0, z1 = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    heads = None if head is None else torch.full((5,), head)
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    forward, backward = net.curve(z0, z1, heads)(t), net.curve(z1, z0, heads)(t)
    assert torch.equal(forward[:, 0], z0) or torch.allclose(forward[:, 0], z0, rtol=0, atol=1e-15)
    torch.testing.assert_close(forward[:, -1], z1, rtol=0, atol=1e-14)
    torch.testing.assert_close(forward, backward.flip(1), rtol=0, atol=1e-12)
    assert (forward - (1 - t.view(1, -1, 1)) * z0.unsqueeze(1) - t.view(1, -1, 1) * z1.unsqueeze(1)).abs().max() > 0.1


def test_velocities_are_the_derivative_of_the_points():
    for net, head in ((random_network(), None), (random_network(heads=3), torch.tensor([2, 0, 1]))):
        z0, z1 = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
        t = torch.rand(3, 7, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda s: net.points(s, z0, z1, head).sum(dim=(0, 1)), t)  # (d, B, N)
        torch.testing.assert_close(net.curve(z0, z1, head).deriv(t), jac.permute(1, 2, 0))


def test_each_head_is_its_own_curve_and_the_solver_answers_with_the_shortest():
    A = torch.tensor([[2.0, 0.3], [0.0, 0.5], [1.0, -1.0]], dtype=torch.float64)
    M = analytic.linear_manifold(A)  # geodesics are straight lines
    net = random_network(heads=3)
    rows = net.layers[-1].weight.view(3, -1, 16)  # (heads, K d, hidden): head 1 made the straight line
    with torch.no_grad():
        rows[1] = 0
        net.layers[-1].bias.view(3, -1)[1] = 0
    z0, z1 = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    every = net.all_points(t, z0, z1)  # (6, 3, 9, 2)
    for h in range(3):
        torch.testing.assert_close(every[:, h], net.curve(z0, z1, torch.full((6,), h))(t), rtol=0, atol=1e-12)
    assert net.select_heads(M, z0, z1).tolist() == [1] * 6
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net)
    torch.testing.assert_close(result.length, ((z1 - z0) @ A.T).norm(dim=-1), rtol=1e-12, atol=0)
    assert result.converged.all()


def test_a_network_with_several_heads_names_a_missing_or_wrong_head():
    net = random_network(heads=3)
    z0, z1, t = torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="has 3 heads: give each pair's head"):
        net.curve(z0, z1)
    with pytest.raises(ValueError, match="has 3 heads"):
        net.points(t, z0, z1)
    for head in (torch.tensor([0, 3]), torch.tensor([0]), torch.tensor([0.0, 1.0]), torch.tensor([-1, 0])):
        with pytest.raises(ValueError, match=r"head must hold 2 head indices in \[0, 3\)"):
            net.curve(z0, z1, head)


def test_a_pair_with_equal_ends_is_the_constant_curve():
    net = random_network()
    z = torch.randn(2, 2, dtype=torch.float64)
    points = net.curve(z, z)(torch.linspace(0, 1, 5, dtype=torch.float64))
    torch.testing.assert_close(points, z.unsqueeze(1).expand_as(points), rtol=0, atol=0)


# worst: the largest excess allowed; the worst pair's ends are the farthest out of the codes (one head:
# 6.6% long; two heads, whose trunk also serves the second head: 13.8%)
@pytest.mark.parametrize("heads, worst", [(1, 0.1), (2, 0.2)])
def test_on_a_linear_decoder_the_network_learns_the_straight_line(heads, worst):
    A = torch.tensor([[2.0, 0.3], [0.0, 0.5], [1.0, -1.0]], dtype=torch.float64)
    M = analytic.linear_manifold(A)
    generator = torch.Generator().manual_seed(0)
    codes, z0, z1 = torch.randn(3, 200, 2, dtype=torch.float64, generator=generator)[:, :, :].unbind(0)
    z0, z1 = z0[:8], z1[:8]  # held out: not among the fitted pairs' ends
    t = torch.linspace(0, 1, 33, dtype=torch.float64)
    line = (1 - t.view(1, -1, 1)) * z0.unsqueeze(1) + t.view(1, -1, 1) * z1.unsqueeze(1)

    def deviation(net: vm.GeodesicNetwork) -> torch.Tensor:
        """(8,) largest distance of each curve from its straight line (the codes have unit spread)."""
        with torch.no_grad():
            return (net.curve(z0, z1, net.select_heads(M, z0, z1))(t) - line).norm(dim=-1).max(dim=1).values

    start = random_network(heads=heads)
    before = deviation(start)
    assert before.min() > 0.1
    net = vm.GeodesicNetwork.fit(M, codes, network=start, seconds=3600, distill=512, distill_steps=4000, show_progress=False)
    assert (deviation(net) < before / 10).all()
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net)
    excess = result.length / ((z1 - z0) @ A.T).norm(dim=-1) - 1  # the straight line is the geodesic here
    assert excess.abs().median() < 5e-3 and excess.abs().max() < worst, excess


def test_on_the_sphere_held_out_pairs_are_within_two_percent_after_a_short_fit():
    z0, z1 = analytic.sphere_pairs(32, seed=5)
    truth = analytic.great_circle_distance(z0, z1)
    M = analytic.sphere_manifold()
    line = vm.connecting_geodesic(M, z0, z1, method="linear")
    assert (line.length / truth - 1).max() > 0.02  # the pairs are not all nearly straight
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=sphere_network())
    assert (result.length / truth - 1).abs().max() < 0.02
    refined = vm.connecting_geodesic(M, z0, z1, method="amortized", network=sphere_network(), refine=True)
    assert refined.converged.all(), refined.reasons
    torch.testing.assert_close(refined.length, truth, rtol=1e-4, atol=0)


def test_the_fit_is_reproducible():
    M, codes = analytic.sphere_manifold(), analytic.sphere_grid(6, 8)
    fits = [vm.GeodesicNetwork.fit(M, codes, seconds=3600, distill=16, distill_steps=20, show_progress=False) for _ in range(2)]
    for a, b in zip(fits[0].state_dict().values(), fits[1].state_dict().values()):
        assert torch.equal(a, b)


def test_save_and_load_give_identical_curves(tmp_path):
    net = sphere_network()
    loaded = vm.GeodesicNetwork.load(net.save(tmp_path / "net.pt"))
    z0, z1 = analytic.sphere_pairs(4, seed=2)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(net.curve(z0, z1)(t), loaded.curve(z0, z1)(t))
    loaded.check_manifold(analytic.sphere_manifold())
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_save_and_load_keep_the_heads_and_read_a_version_1_file_as_one_head(tmp_path):
    net = random_network(heads=3)
    loaded = vm.GeodesicNetwork.load(net.save(tmp_path / "net.pt"))
    z0, z1 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert loaded.heads == 3 and torch.equal(net.all_points(t, z0, z1), loaded.all_points(t, z0, z1))
    one = random_network()
    payload = torch.load(one.save(tmp_path / "one.pt"), weights_only=True)
    del payload["config"]["heads"]  # as version 1 wrote it
    torch.save({**payload, "version": 1}, tmp_path / "v1.pt")
    old = vm.GeodesicNetwork.load(tmp_path / "v1.pt")
    assert old.heads == 1 and torch.equal(old.curve(z0, z1)(t), one.curve(z0, z1)(t))


def test_files_that_are_not_networks_are_refused(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(NetworkError, match="not a readable torch file"):
        vm.GeodesicNetwork.load(tmp_path / "garbage.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(NetworkError, match="not a vaemanifold geodesic network"):
        vm.GeodesicNetwork.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        vm.GeodesicNetwork.load(tmp_path / "missing.pt")


def test_a_network_refuses_another_manifold():
    net = sphere_network()
    z = torch.zeros(1, 3, dtype=torch.float64)
    with pytest.raises(NetworkError, match="2-dimensional latent space; the manifold's is 3-dimensional"):
        vm.connecting_geodesic(analytic.linear_manifold(torch.eye(3, dtype=torch.float64)), z, z + 1, method="amortized", network=net)
    other = analytic.linear_manifold(torch.eye(3, 2, dtype=torch.float64))
    with pytest.raises(NetworkError, match="fitted on another decoder"):
        vm.connecting_geodesic(other, z[:, :2], z[:, :2] + 1, method="amortized", network=net)


def test_the_amortized_solver_needs_a_network_and_names_what_is_wrong():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(1)
    with pytest.raises(ValueError, match="needs network="):
        vm.connecting_geodesic(M, z0, z1, method="amortized")
    with pytest.raises(TypeError, match="GeodesicNetwork"):
        vm.connecting_geodesic(M, z0, z1, method="amortized", network="net.pt")
    with pytest.raises(ValueError, match="refine must be"):
        vm.connecting_geodesic(M, z0, z1, method="amortized", network=sphere_network(), refine=3)
    with pytest.raises(ValueError, match="init= is not used"):
        line = vm.connecting_geodesic(M, z0, z1, method="linear").curve
        vm.connecting_geodesic(M, z0, z1, method="amortized", network=sphere_network(), init=line)


def test_an_unrefined_curve_far_from_a_geodesic_is_not_converged():
    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(4, seed=3)
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=random_network())
    assert not result.converged.any()
    assert all("Gauss-Newton step predicts a curve" in reason for reason in result.reasons)


def test_the_energy_phase_alone_shortens_curves_on_the_sphere():
    M = analytic.sphere_manifold()
    net = vm.GeodesicNetwork.fit(
        M, analytic.sphere_grid(20, 30), seconds=3600, distill=0, energy_steps=400, batch=64, show_progress=False
    )
    z0, z1 = analytic.sphere_pairs(16, seed=6)
    line = vm.connecting_geodesic(M, z0, z1, method="linear").length
    truth = analytic.great_circle_distance(z0, z1)
    result = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net)
    assert (result.length - truth).sum() < 0.6 * (line - truth).sum()  # the line's excess shrinks by 40%+


def test_refine_options_configure_the_refining_solver():
    from vaemanifold.solvers.amortized import LIGHT_REFINE, REFINE_OPTIONS

    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(4, seed=3)
    net = random_network()
    raw = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net)
    light = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, refine=True, refine_options=LIGHT_REFINE)
    by_hand = vm.connecting_geodesic(M, z0, z1, method="gauss_newton", init=raw.curve, **{**REFINE_OPTIONS, **LIGHT_REFINE})
    torch.testing.assert_close(light.length, by_hand.length, rtol=1e-12, atol=0)
    spline = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, refine="spline", refine_options={"iterations": 1})
    one_step = vm.connecting_geodesic(M, z0, z1, method="spline", init=raw.curve, iterations=1)
    torch.testing.assert_close(spline.length, one_step.length, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="refine_options are options of the refining solver"):
        vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, refine_options=LIGHT_REFINE)


def test_refine_starts_each_pair_from_the_shortest_of_the_network_the_line_and_the_graph_path():
    from vaemanifold.curves import interpolating_spline
    from vaemanifold.solvers.amortized import REFINE_OPTIONS
    from vaemanifold.solvers.gauss_newton import lowest_start, sample_curve

    M = analytic.sphere_manifold(analytic.sphere_grid(20, 30))  # with latent codes: a graph path is a candidate
    z0, z1 = analytic.sphere_pairs(12, seed=1)
    net = sphere_network()  # fitted briefly: near the great circles, not on them
    raw = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net)
    t = torch.linspace(0, 1, REFINE_OPTIONS["levels"][0] + 1, dtype=torch.float64)
    network_nodes = sample_curve(raw.curve, t)
    start = lowest_start(M, z0, z1, t, also=network_nodes, by="length")
    from_network = (start - network_nodes).abs().amax(dim=(1, 2)) == 0
    assert from_network.any() and not from_network.all()  # this network's curves win on some pairs only
    refined = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, refine=True)
    by_hand = vm.connecting_geodesic(M, z0, z1, method="gauss_newton", init=interpolating_spline(start), **REFINE_OPTIONS)
    torch.testing.assert_close(refined.length, by_hand.length, rtol=1e-12, atol=0)
    network_only = vm.connecting_geodesic(M, z0, z1, method="amortized", network=net, refine=True,
                                          refine_options={"graph_start": False})
    from_raw = vm.connecting_geodesic(M, z0, z1, method="gauss_newton", init=raw.curve, **REFINE_OPTIONS)
    torch.testing.assert_close(network_only.length, from_raw.length, rtol=1e-12, atol=0)


def test_a_light_refinement_shortens_a_fitted_network_s_curves():
    from vaemanifold.solvers.amortized import LIGHT_REFINE

    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(32, seed=5)
    truth = analytic.great_circle_distance(z0, z1)
    raw = vm.connecting_geodesic(M, z0, z1, method="amortized", network=sphere_network())
    light = vm.connecting_geodesic(M, z0, z1, method="amortized", network=sphere_network(), refine=True,
                                   refine_options=LIGHT_REFINE)
    raw_excess, light_excess = raw.length / truth - 1, light.length / truth - 1
    assert raw_excess.median() > 1e-3  # the short fit leaves the raw curves measurably long
    assert light_excess.median() < raw_excess.median() / 4, (light_excess.median(), raw_excess.median())


def test_a_network_is_measured_on_the_runs_it_is_given_against_one_best_known():
    from vaemanifold.evaluation.amortization import evaluate_network
    from vaemanifold.evaluation.problems import Problem

    M = analytic.sphere_manifold()
    z0, z1 = analytic.sphere_pairs(6, seed=2)
    problem = Problem("sphere", M, z0, z1, "six pairs on the sphere chart")
    runs = {"line": ("linear", {}), "raw": ("amortized", {}), "refined": ("amortized", {"refine": True})}
    result = evaluate_network(problem, random_network(), 0.0, runs=runs)
    rows = {row["solver"]: row for row in result["rows"]}
    assert list(rows) == ["line", "raw", "refined"]
    line_over_truth = vm.connecting_geodesic(M, z0, z1, method="linear").length / analytic.great_circle_distance(z0, z1)
    torch.testing.assert_close(rows["line"]["max_length_ratio"], line_over_truth.max().item(), rtol=1e-3, atol=0)
    assert abs(rows["refined"]["median_length_ratio"] - 1) < 1e-3
