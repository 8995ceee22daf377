"""Fused forward jets against torch.func's JVPs, and the decoders they refuse."""

import pytest
import torch
from torch import nn
from torch.func import jvp

import vaemanifold as vm
from vaemanifold.jets import basis_jet, jet_rule, second_basis_jet, second_jet_rule
from vaemanifold.vae.rbf import RBFPrecision

ACTIVATIONS = [nn.Tanh(), nn.Sigmoid(), nn.SiLU(), nn.Softplus(beta=2.0, threshold=1.0), nn.Identity()]


def jvps(fn, points: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """The jet of fn by torch.func: values, then one JVP per direction, stacked ((1 + p) n, D)."""
    out = [fn(points)] + [jvp(fn, (points,), (t,))[1] for t in tangents]
    return torch.cat(out)


def rbf_network(seed: int) -> RBFPrecision:
    torch.manual_seed(seed)
    rbf = RBFPrecision(latent_dim=2, data_dim=5, num_centers=3, zeta=1e-2).double()
    rbf.centres.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.5], [-1.0, 2.0]]))
    rbf.bandwidths.copy_(torch.tensor([0.5, 2.0, 1.0]))
    rbf.log_weights.data.normal_()
    return rbf


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_sequential_jet_matches_jvps(activation):
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(6, 5), activation)  # nested, and wide enough to cross softplus' threshold
    net = nn.Sequential(nn.Linear(3, 6), activation, inner, nn.Linear(5, 4, bias=False), activation).double()
    points = 2 * torch.randn(7, 3, dtype=torch.float64)
    tangents = torch.randn(2, 7, 3, dtype=torch.float64)  # any directions, not only the basis
    with torch.no_grad():
        fused = jet_rule(net)(torch.cat([points, tangents.flatten(0, 1)]), 7)
        torch.testing.assert_close(fused, jvps(net, points, tangents))


def test_rbf_jet_matches_jvps_near_and_beyond_the_cutoff():
    rbf = rbf_network(1)
    points = torch.tensor([[0.1, -0.2], [1.0, 0.4], [-0.5, 1.5], [30.0, -30.0]], dtype=torch.float64)  # the last: v = 0
    tangents = torch.randn(3, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        fused = rbf.forward_jet(torch.cat([points, tangents.flatten(0, 1)]), 4)
        torch.testing.assert_close(fused, jvps(rbf, points, tangents))
    assert torch.equal(fused[4 + 3 :: 4], torch.zeros(3, 5, dtype=torch.float64))  # no derivative far away


def second_jets(fn, points: torch.Tensor, tangents: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The second-order jet of fn by torch.func: values, JVPs, then d^2/dt^2 fn(g(t)) for a path g with
    g(0) = points, g'(0) = the last tangents and g''(0) = second: D^2 fn[u, u] + D fn[second].

    In grad mode: under no_grad torch's nested forward mode fails on nn.SiLU (no forward rule of its backward)."""
    u = tangents[-1]

    def along(x):
        return jvp(fn, (x,), (u,))[1]

    curvature = jvp(along, (points,), (u,))[1] + jvp(fn, (points,), (second,))[1]
    return torch.cat([jvps(fn, points, tangents), curvature])


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_sequential_second_jet_matches_nested_jvps(activation):
    torch.manual_seed(4)
    inner = nn.Sequential(nn.Linear(6, 5), activation)
    net = nn.Sequential(nn.Linear(3, 6), activation, inner, nn.Linear(5, 4, bias=False), activation).double()
    points, second = 2 * torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    tangents = torch.randn(3, 7, 3, dtype=torch.float64)
    expected = second_jets(net, points, tangents, second).detach()
    with torch.no_grad():
        fused = second_jet_rule(net)(torch.cat([points, tangents.flatten(0, 1), second]), 7)
    torch.testing.assert_close(fused, expected)


def test_rbf_second_jet_matches_nested_jvps_near_and_beyond_the_cutoff():
    rbf = rbf_network(5)
    points = torch.tensor([[0.1, -0.2], [1.0, 0.4], [-0.5, 1.5], [30.0, -30.0]], dtype=torch.float64)
    tangents, second = torch.randn(3, 4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        fused = rbf.forward_second_jet(torch.cat([points, tangents.flatten(0, 1), second]), 4)
        torch.testing.assert_close(fused, second_jets(rbf, points, tangents, second))
    assert torch.equal(fused[-1], torch.zeros(5, dtype=torch.float64))  # no curvature far away


def test_second_jets_of_a_vae_decoder_give_the_geodesic_equation_of_torch_func():
    """Fused (Sequential mean, RBF std) against the nested-JVP path of the same maps, also through autograd."""
    torch.manual_seed(6)
    mean = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 6), nn.Sigmoid()).double()
    std = rbf_network(7)
    fused = vm.DecoderManifold(mean, std)
    wrapped = vm.DecoderManifold(lambda z: mean(z), lambda z: std(z), latent_dim=2)  # no rules: torch.func
    assert second_jet_rule(mean) is not None and second_jet_rule(wrapped.mean) is None
    c = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)  # any leading shape
    dc = torch.randn(3, 5, 2, dtype=torch.float64)
    expected = wrapped.geodesic_system(c, dc)
    got = fused.geodesic_system(c, dc)
    torch.testing.assert_close(got, expected)
    (grad,) = torch.autograd.grad(got.square().sum(), c)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), c)
    torch.testing.assert_close(grad, expected_grad)
    with torch.no_grad():  # the in-place path
        torch.testing.assert_close(fused.geodesic_system(c, dc), expected)


def test_geodesic_equation_without_rules_under_no_grad_through_silu():
    """The torch.func path, as the ODE solver calls it (no_grad), on a SiLU decoder it has no rule for."""
    net = nn.Sequential(nn.Linear(2, 8), nn.SiLU(), nn.Linear(8, 5)).double()
    c, dc = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        by_func = vm.DecoderManifold(lambda z: net(z), latent_dim=2).geodesic_system(c, dc)
        fused = vm.DecoderManifold(net).geodesic_system(c, dc)
    assert not by_func.requires_grad
    torch.testing.assert_close(by_func, fused)


def test_second_basis_jet_layout():
    points, velocity = torch.randn(4, 2), torch.randn(4, 2)
    jet = second_basis_jet(points, velocity)
    assert jet.shape == (5 * 4, 2)
    torch.testing.assert_close(jet[4:12], basis_jet(points)[4:])
    torch.testing.assert_close(jet[12:16], velocity)
    assert torch.equal(jet[16:], torch.zeros(4, 2))


def test_rules_leave_no_trace_on_the_jet_they_are_given_when_gradients_flow():
    net = nn.Sequential(nn.Tanh(), nn.Linear(2, 3)).double()
    jet = basis_jet(torch.randn(4, 2, dtype=torch.float64, requires_grad=True))
    before = jet.detach().clone()
    out = jet_rule(net)(jet, 4)
    torch.testing.assert_close(jet.detach(), before)
    (grad,) = torch.autograd.grad(out.sum(), net[1].weight)
    assert torch.isfinite(grad).all()


def test_decoder_starting_with_an_activation_gets_its_own_jet():
    """With gradients off the rules overwrite their input: mean and std must not share one."""
    torch.manual_seed(2)
    mean = nn.Sequential(nn.Sigmoid(), nn.Linear(2, 4)).double()
    std = nn.Sequential(nn.Linear(2, 3), nn.Softplus()).double()
    M = vm.DecoderManifold(mean, std)
    z = torch.randn(5, 2, dtype=torch.float64)

    def f(x):
        return torch.cat([mean(x), std(x)], -1)

    expected = torch.stack([torch.autograd.functional.jacobian(f, zi) for zi in z])
    with torch.no_grad():
        values, J = M.embed(z, jacobian=True)
    torch.testing.assert_close(values, f(z))
    torch.testing.assert_close(J, expected)


class Doubling(nn.Sequential):
    def forward(self, z):
        return 2 * super().forward(z)


def test_no_rule_where_the_forward_could_differ():
    linear = nn.Linear(2, 2)
    hooked = nn.Sequential(nn.Linear(2, 2))
    hooked.register_forward_hook(lambda module, inputs, output: output + 1)
    assert jet_rule(Doubling(nn.Linear(2, 2))) is None  # a subclass may override forward
    assert jet_rule(hooked) is None
    assert jet_rule(nn.Sequential(linear, nn.ReLU())) is None  # not a supported layer
    assert jet_rule(lambda z: z) is None
    assert jet_rule(nn.Sequential(linear, nn.Tanh())) is not None


def test_decoders_without_a_rule_still_get_exact_jacobians():
    torch.manual_seed(3)
    mean = Doubling(nn.Linear(2, 3), nn.ReLU()).double()
    M = vm.DecoderManifold(mean, latent_dim=2)
    z = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        _, J = M.embed(z, jacobian=True)
    expected = torch.stack([torch.autograd.functional.jacobian(mean, zi) for zi in z])
    torch.testing.assert_close(J, expected)
