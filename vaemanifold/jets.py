"""Values and Jacobians of decoders in one fused forward pass (first-order jets).

A decoder's Jacobian at n points is its d directional derivatives along the
latent basis. torch.func computes them as d vmapped JVPs, for any callable.
For the layers that decoders are made of it is faster to carry the values and
the derivatives as one stacked ``jet``, a ((1 + p) n, width) tensor: rows
[0, n) hold the values, rows [(j + 1) n, (j + 2) n) the derivatives along
direction j (p directions). An affine layer maps the whole stack with one
matrix product and adds its bias to the value rows only; an elementwise
activation maps the value rows and scales the derivative rows by its
derivative there. Measured on the mnist-2d preset (one thread, 1,024 points,
three runs; ``python docs/examples/jet_speed.py``): the decoder mean's
Jacobian took 21-25 us a point by torch.func and 11 fused, the RBF sigma's
14-15 and 5-8; a Gauss-Newton geodesic, whose cost is mostly Jacobians,
about 30% less.

:func:`jet_rule` knows ``nn.Sequential`` (exactly that class: a subclass may
override ``forward``) of ``nn.Linear``, ``nn.Tanh``, ``nn.Sigmoid``,
``nn.SiLU``, ``nn.Softplus`` and ``nn.Identity``, nested freely, and any
module with a ``forward_jet(jet, n)`` method of its own (the package's RBF
variance network). A module with forward hooks, or anything else, has no rule:
the caller then uses torch.func.

Second-order jets (:func:`second_jet_rule`) add one row block: a
((2 + p) n, width) jet whose last n rows hold the second derivative along the
last direction p. The geodesic equation needs exactly that: the Jacobian (the
d basis directions) and the second derivative of the decoder along the
velocity (direction d + 1). An activation maps the second-order rows to
a''(x) (the tangent along p)^2 + a'(x) (the second-order rows); an affine
layer maps them like the tangents. Modules take part with a
``forward_second_jet(jet, n)`` method of their own. On the mnist-2d preset the
geodesic equation (the ODE solver's right-hand side) takes 210 us a point by
nested torch.func JVPs and 58 by second-order jets (float64, one thread,
``python docs/examples/jet_speed.py``).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch
from torch import nn

#: rule(jet, n) -> jet: maps a ((1 + p) n, in) jet of n points to the ((1 + p) n, out) jet of the outputs.
JetRule = Callable[[torch.Tensor, int], torch.Tensor]


def basis_jet(points: torch.Tensor) -> torch.Tensor:
    """The jet of the identity at points (n, d) along the d basis directions: ((1 + d) n, d)."""
    n, d = points.shape
    eye = torch.eye(d, dtype=points.dtype, device=points.device)
    return torch.cat([points, eye.repeat_interleave(n, dim=0)])


def second_basis_jet(points: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
    """The second-order jet of the identity at points (n, d): the d basis directions, then
    ``velocity`` (n, d), then the (zero) second derivative along it: ((3 + d) n, d)."""
    return torch.cat([basis_jet(points), velocity, torch.zeros_like(points)])


def jet_rule(fn: object) -> Optional[JetRule]:
    """The fused forward rule of ``fn`` (see the module docstring), or None where it has none."""
    return _rule(fn, "forward_jet", _elementwise)


def second_jet_rule(fn: object) -> Optional[JetRule]:
    """The fused second-order rule of ``fn`` (see the module docstring), or None where it has none."""
    return _rule(fn, "forward_second_jet", _elementwise_second)


def _rule(fn: object, method: str, elementwise: Callable) -> Optional[JetRule]:
    if isinstance(fn, nn.Module) and (fn._forward_hooks or fn._forward_pre_hooks):
        return None
    own = getattr(fn, method, None)
    if callable(own):
        return own
    if type(fn) is nn.Sequential:
        rules = [_rule(layer, method, elementwise) for layer in fn]
        return None if any(rule is None for rule in rules) else partial(_compose, rules)
    if type(fn) is nn.Linear:
        return partial(_affine, fn)
    if type(fn) is nn.Identity:
        return _unchanged
    derivative = _DERIVATIVES.get(type(fn))
    return None if derivative is None else partial(elementwise, fn, derivative)


def _compose(rules: list[JetRule], jet: torch.Tensor, n: int) -> torch.Tensor:
    for rule in rules:
        jet = rule(jet, n)
    return jet


def _unchanged(jet: torch.Tensor, n: int) -> torch.Tensor:
    return jet


def _affine(layer: nn.Linear, jet: torch.Tensor, n: int) -> torch.Tensor:
    out = jet @ layer.weight.T
    if layer.bias is not None:
        out[:n] += layer.bias
    return out


def _elementwise(layer: nn.Module, derivative: Callable, jet: torch.Tensor, n: int) -> torch.Tensor:
    """An activation y = a(x): values a(x), derivative rows times a'(x) (computed from x and y).

    Without autograd the jet is overwritten in place (a fresh copy of it costs as much as the layer).
    """
    x = jet[:n]
    y = layer(x)
    slopes = derivative(layer, x, y)
    if jet.requires_grad:
        tangents = jet[n:].view(-1, *x.shape) * slopes
        return torch.cat([y, tangents.view(-1, x.shape[-1])])
    jet[n:].view(-1, *x.shape).mul_(slopes)
    jet[:n] = y
    return jet


def _elementwise_second(layer: nn.Module, derivative: Callable, jet: torch.Tensor, n: int) -> torch.Tensor:
    """An activation on a second-order jet: tangents times a'(x), the last rows a''(x) t^2 + a'(x) s
    (t the tangent along the last direction, s the second-order rows). In place without autograd."""
    x = jet[:n]
    y = layer(x)
    slopes = derivative(layer, x, y)
    curvature = _SECOND_DERIVATIVES[type(layer)](layer, x, y)
    along, second = jet[-2 * n : -n], jet[-n:]
    if jet.requires_grad:
        tangents = jet[n:-n].view(-1, *x.shape) * slopes
        return torch.cat([y, tangents.view(-1, x.shape[-1]), curvature * along * along + slopes * second])
    second.mul_(slopes).addcmul_(curvature, along * along)
    jet[n:-n].view(-1, *x.shape).mul_(slopes)
    jet[:n] = y
    return jet


def _softplus_derivative(layer: nn.Softplus, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    scaled = layer.beta * x
    return torch.where(scaled > layer.threshold, torch.ones_like(x), torch.sigmoid(scaled))


def _silu_derivative(layer: nn.SiLU, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


#: a'(x) of the supported activations, from x and y = a(x).
_DERIVATIVES: dict[type, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.Tanh: lambda layer, x, y: 1 - y * y,
    nn.Sigmoid: lambda layer, x, y: y * (1 - y),
    nn.SiLU: _silu_derivative,
    nn.Softplus: _softplus_derivative,
}


def _softplus_second_derivative(layer: nn.Softplus, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    scaled = layer.beta * x
    s = torch.sigmoid(scaled)
    return torch.where(scaled > layer.threshold, torch.zeros_like(x), layer.beta * s * (1 - s))


def _silu_second_derivative(layer: nn.SiLU, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


#: a''(x) of the supported activations, from x and y = a(x).
_SECOND_DERIVATIVES: dict[type, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.Tanh: lambda layer, x, y: -2 * y * (1 - y * y),
    nn.Sigmoid: lambda layer, x, y: y * (1 - y) * (1 - 2 * y),
    nn.SiLU: _silu_second_derivative,
    nn.Softplus: _softplus_second_derivative,
}
