"""The latent space of a decoder as a stochman ``EmbeddedManifold``.

A decoder with mean mu(z) and standard deviation sigma(z) embeds the latent
space in data space by f(z) = concat(mu(z), sigma(z)). The pull-back of the
Euclidean metric through f is the *expected* metric of Arvanitidis et al. (2017):

    M(z) = J_mu(z)^T J_mu(z) + J_sigma(z)^T J_sigma(z).

All derivatives use forward mode: a Jacobian is d JVPs (vmapped torch.func,
or one fused pass for the layers :mod:`vaemanifold.jets` knows), a curve's velocity in data space is one JVP, and the geodesic equation's
Christoffel term is one nested JVP. Any row-wise callable or ``nn.Module``
works as mean or std; stochman's ``nnj`` layers are not needed.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

import torch
from stochman.curves import BasicCurve
from stochman.manifold import EmbeddedManifold
from stochman.utils import tensor_reduction
from torch import nn
from torch.func import jvp, vmap

from ._checks import check_points
from .jets import basis_jet, jet_rule, second_basis_jet, second_jet_rule

#: The function behind :meth:`DecoderManifold.connecting_geodesic`:
#: :func:`vaemanifold.connecting_geodesic`, installed by :mod:`vaemanifold.geodesic` through
#: :func:`install_geodesic_entry` when the package is imported. The geometry layer thereby
#: imports nothing from the solver layers above it.
_GEODESIC_ENTRY: list[Callable] = []

#: On a CPU, :meth:`DecoderManifold.embed` evaluates at most this many points at a time. The outputs
#: of a batch are D numbers a point (and d times that for a Jacobian); past a few thousand points they
#: and the layers' intermediates spill out of the caches. Measured on the mnist-2d preset, one thread,
#: 32,768 codes: a decoder pass 11.8 us a point in one batch against 7.2 in chunks of 1,024, its
#: Jacobian 61 against 36 us; chunks of 512-2,048 were within 5% of 1,024. On other devices the
#: whole batch goes at once.
EMBED_CHUNK = 1024
#: Jet rows per CPU chunk of the geodesic equation's second-order jets ((3 + d) rows a point). Measured on
#: fashion-2d (float64, one thread): 54-56 us a point in chunks of 256-400 points, 64-80 in chunks of
#: 512-1,024 on meshes of 800-1,600 points.
SECOND_JET_ROWS = 2048


def install_geodesic_entry(function: Callable) -> None:
    """Set the function :meth:`DecoderManifold.connecting_geodesic` delegates to (done by :mod:`vaemanifold.geodesic`)."""
    _GEODESIC_ENTRY[:] = [function]

DecoderMap = Callable[[torch.Tensor], torch.Tensor]
CurveLike = Union[torch.Tensor, BasicCurve]

#: Points on which a BasicCurve is evaluated by curve_length / curve_energy.
DEFAULT_GRID = 256


def polyline_length(embedded: torch.Tensor) -> torch.Tensor:
    """(B,) lengths of the data-space polylines through embedded points (B, N, D)."""
    return embedded.diff(dim=1).norm(dim=-1).sum(dim=1)


def polyline_energy(embedded: torch.Tensor) -> torch.Tensor:
    """(B,) discrete energies (N-1) sum ||e_{i+1} - e_i||^2 of embedded points (B, N, D) at equally spaced t."""
    return (embedded.diff(dim=1) ** 2).sum(dim=(1, 2)) * (embedded.shape[1] - 1)


def _infer_latent_dim(mean: DecoderMap) -> Optional[int]:
    """The input size of the first ``nn.Linear`` in ``mean``, if it has one."""
    if isinstance(mean, nn.Module):
        for module in mean.modules():
            if isinstance(module, nn.Linear):
                return module.in_features
    return None


def _assembled_by_chunks(
    count: int,
    device: torch.device,
    evaluate: Callable[[slice], list[tuple[torch.Tensor, ...]]],
    chunk: int = EMBED_CHUNK,
) -> tuple[torch.Tensor, ...]:
    """Per-point results of the parts of a decoder (mean, std), evaluated in chunks of ``chunk`` points
    on the CPU (all at once elsewhere) and written straight into preallocated outputs: a torch.cat of the
    parts, and of the chunks, would copy them once more.

    Args:
        count: N, the number of points.
        evaluate: span of points -> per part a tuple of tensors (..., n, D_k), n the span's points.
        chunk: points per chunk on the CPU.

    Returns:
        one tensor (..., N, sum of D_k) per tuple position, the parts side by side in the last dimension.
    """
    chunk = chunk if device.type == "cpu" else max(count, 1)
    outputs = None
    for begin in range(0, max(count, 1), chunk):
        span = slice(begin, min(begin + chunk, count))
        pieces = evaluate(span)
        if outputs is None:
            dtype = functools.reduce(torch.promote_types, (tensor.dtype for piece in pieces for tensor in piece))
            width = sum(piece[0].shape[-1] for piece in pieces)
            outputs = tuple(
                torch.empty(*tensor.shape[:-2], count, width, dtype=dtype, device=device) for tensor in pieces[0]
            )
        column = 0
        for piece in pieces:
            columns = slice(column, column + piece[0].shape[-1])
            for output, tensor in zip(outputs, piece):
                output[..., span, columns] = tensor
            column = columns.stop
    return outputs


class DecoderManifold(EmbeddedManifold, nn.Module):
    """Latent space of a decoder with the expected pull-back metric.

    Args:
        mean: decoder mean, a row-wise map (..., d) -> (..., D_mu).
        std: optional decoder standard deviation, (..., d) -> (..., D_sigma).
            Without it the metric is J_mu^T J_mu.
        latents: optional (N, d) latent codes of the training data, used by
            the graph solver and by plots.
        latent_dim: d; inferred from ``latents`` or the first ``nn.Linear`` of
            ``mean`` when omitted, else learnt from the first points the
            manifold is given (points of another dimension are refused after that).

    ``evaluations`` counts the latent points at which the decoder (or one of
    its JVPs) has been evaluated, for benchmarks; reset it freely.
    """

    def __init__(
        self,
        mean: DecoderMap,
        std: Optional[DecoderMap] = None,
        latents: Optional[torch.Tensor] = None,
        latent_dim: Optional[int] = None,
    ) -> None:
        nn.Module.__init__(self)
        if not callable(mean):
            raise TypeError(f"mean must be callable, got {type(mean).__name__}")
        if std is not None and not callable(std):
            raise TypeError(f"std must be callable or None, got {type(std).__name__}")
        self.mean = mean
        self.std = std
        if latent_dim is None:
            latent_dim = latents.shape[-1] if isinstance(latents, torch.Tensor) else _infer_latent_dim(mean)
        self._latent_dim = None if latent_dim is None else int(latent_dim)
        if latents is not None:
            check_points(latents, self.latent_dim, "latents")
            if latents.dim() != 2:
                raise ValueError(f"latents must be (N, d), got shape {tuple(latents.shape)}")
            latents = latents.detach()
        self.register_buffer("latents", latents)
        self.evaluations = 0

    @property
    def latent_dim(self) -> int:
        """d, the latent dimension (known from the start, or from the first points given)."""
        if self._latent_dim is None:
            raise ValueError(
                "the latent dimension is not known yet: it is learnt from the first points the manifold is "
                "given (or pass latent_dim= to DecoderManifold)"
            )
        return self._latent_dim

    def check_points(self, points: torch.Tensor, name: str = "points") -> torch.Tensor:
        """Check that ``points`` are (..., d) finite floats; the first points ever given fix d if it is unknown."""
        if self._latent_dim is None and isinstance(points, torch.Tensor) and points.dim() >= 1:
            self._latent_dim = int(points.shape[-1])
        return check_points(points, self.latent_dim, name)

    @contextmanager
    def frozen(self) -> Iterator["DecoderManifold"]:
        """Within the block the decoder's parameters need no gradient (restored after).

        Solvers optimise curves, not the decoder: this saves the backward pass
        into the decoder's weights and leaves the caller's ``.grad`` untouched.
        """
        flags = [(p, p.requires_grad) for p in self.parameters()]
        try:
            for p, _ in flags:
                p.requires_grad_(False)
            yield self
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    # ----------------------------------------------------------------- embedding
    def _f(self, z: torch.Tensor) -> torch.Tensor:
        """f(z) = concat(mean(z), std(z)): (..., d) -> (..., D)."""
        mu = self.mean(z)
        return mu if self.std is None else torch.cat([mu, self.std(z)], dim=-1)

    def _count(self, points: torch.Tensor, passes: int = 1) -> None:
        self.evaluations += passes * (points.numel() // self.latent_dim)

    def embed(self, points: torch.Tensor, jacobian: bool = False):
        """Embed latent points in data space (stochman's contract).

        Args:
            points: (..., d), typically (N, d) or (B, N, d).
            jacobian: also return the Jacobian of the embedding.

        Returns:
            (..., D) embedded points; with ``jacobian=True`` a tuple of those
            and the (..., D, d) Jacobian.
        """
        self.check_points(points)
        self._count(points, 1 + self.latent_dim if jacobian else 1)
        flat = points.reshape(-1, points.shape[-1])
        outputs = _assembled_by_chunks(len(flat), flat.device, lambda span: self._embed_parts(flat[span], jacobian))
        values, tangents = outputs if jacobian else (outputs[0], None)
        values = values.reshape(*points.shape[:-1], values.shape[-1])
        if not jacobian:
            return values
        # (d, N, D) tangent-major, returned as the (..., D, d) view of it that node_system relies on
        return values, tangents.reshape(len(tangents), *values.shape).movedim(0, -1)

    def _embed_parts(self, rows: torch.Tensor, jacobian: bool) -> list[tuple[torch.Tensor, ...]]:
        """For mean and std (if any) at rows (n, d): (values (n, D_k),), with ``jacobian`` (values, the d JVPs along
        the basis (d, n, D_k))."""
        parts = [part for part in (self.mean, self.std) if part is not None]
        if not jacobian:
            return [(part(rows),) for part in parts]
        rules = [jet_rule(part) for part in parts]
        if all(rule is not None for rule in rules):  # one fused pass each (vaemanifold.jets)
            n = len(rows)
            outs = [rule(basis_jet(rows), n) for rule in rules]  # a rule may overwrite the jet it is given
            return [(out[:n], out[n:].view(-1, n, out.shape[-1])) for out in outs]
        basis = torch.eye(self.latent_dim, dtype=rows.dtype, device=rows.device)

        def directional(part: DecoderMap, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return jvp(part, (rows,), (v.expand_as(rows),))

        # the primal does not depend on the tangent: vmap computes it once and returns it unbatched
        return [vmap(functools.partial(directional, part), out_dims=(None, 0))(basis) for part in parts]

    def velocity(self, points: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
        """J_f(z) v, the data-space velocity of tangent vectors: one forward-mode JVP.

        Args:
            points: (..., d) base points.
            tangents: (..., d) tangent vectors, same shape.

        Returns:
            (..., D); its squared norm is the metric inner product v^T M(z) v.
        """
        self.check_points(points)
        if tangents.shape != points.shape:
            raise ValueError(f"tangents {tuple(tangents.shape)} and points {tuple(points.shape)} differ in shape")
        self._count(points)
        return jvp(self._f, (points,), (tangents,))[1]

    # -------------------------------------------------------------------- metric
    def metric(self, points: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
        """The expected metric M(z) = J^T J.

        Args:
            points: (N, d) (any leading shape is accepted).
            chunk_size: points per Jacobian evaluation (bounds memory: the
                Jacobian chunk holds chunk_size * D * d numbers).

        Returns:
            (N, d, d) symmetric positive semi-definite matrices.
        """
        self.check_points(points)
        flat = points.reshape(-1, self.latent_dim)
        chunks = []
        for part in flat.split(chunk_size):
            _, J = self.embed(part, jacobian=True)
            chunks.append(J.transpose(-1, -2) @ J)
        M = torch.cat(chunks) if chunks else flat.new_zeros(0, self.latent_dim, self.latent_dim)
        return M.reshape(*points.shape[:-1], self.latent_dim, self.latent_dim)

    def inner(self, base: torch.Tensor, u: torch.Tensor, v: torch.Tensor, return_metric: bool = False):
        """<u, v>_M(base) for (N, d) tensors; optionally also the (N, d, d) metric."""
        M = self.metric(base)
        dot = torch.einsum("...i,...ij,...j->...", u, M, v)
        return (dot, M) if return_metric else dot

    def log_magnification(self, points: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
        """log sqrt(det M(z)), the log magnification factor: (N, d) -> (N,)."""
        return 0.5 * torch.linalg.slogdet(self.metric(points, chunk_size)).logabsdet

    # -------------------------------------------------------------------- curves
    def _as_points(self, curve: CurveLike, grid: int) -> torch.Tensor:
        """A curve as (B, N, d) points; BasicCurves are sampled on ``grid`` points."""
        if isinstance(curve, BasicCurve):
            t = torch.linspace(0, 1, grid, dtype=curve.begin.dtype, device=curve.begin.device)
            points = curve(t)
        elif isinstance(curve, torch.Tensor):
            points = curve
        else:
            raise TypeError(f"curve must be a tensor or a stochman BasicCurve, got {type(curve).__name__}")
        self.check_points(points, "curve")
        if points.dim() == 2:
            points = points.unsqueeze(0)  # never in place: the caller's tensor stays as it is
        if points.dim() != 3 or points.shape[1] < 2:
            raise ValueError(f"a curve must be (N, d) or (B, N, d) with N >= 2, got {tuple(points.shape)}")
        return points

    def curve_energy(
        self, curve: CurveLike, reduction: Optional[str] = "sum", grid: int = DEFAULT_GRID
    ) -> torch.Tensor:
        """Discrete energy int ||d/dt f(c(t))||^2 dt of curves on [0, 1].

        Args:
            curve: (N, d) or (B, N, d) points at equally spaced t, or a BasicCurve
                (then sampled at ``grid`` points).
            reduction: 'sum' (stochman's default), 'mean', or 'none'/None for (B,).

        Finite differences in data space, (N-1) * sum ||f(c_{i+1}) - f(c_i)||^2,
        so energy >= length^2 with equality at constant speed.
        """
        return tensor_reduction(polyline_energy(self.embed(self._as_points(curve, grid))), reduction)

    def curve_length(self, curve: CurveLike, grid: int = DEFAULT_GRID) -> torch.Tensor:
        """Length of curves: the data-space polyline through f(c(t_i)).

        Args:
            curve: (N, d) or (B, N, d) points, or a BasicCurve (sampled at ``grid`` points).

        Returns:
            (B,) lengths (B = 1 for a single curve).
        """
        return polyline_length(self.embed(self._as_points(curve, grid)))

    # ---------------------------------------------------------------- geodesics
    def geodesic_system(self, c: torch.Tensor, dc: torch.Tensor) -> torch.Tensor:
        """Geodesic equation c'' = -M^{-1} J^T D^2f(c)[c', c'] (differentiable).

        For a pull-back metric the Christoffel term is J^T times the second
        directional derivative of f along c'. Decoders with second-order jet
        rules (:mod:`vaemanifold.jets`) get J and it in one fused pass; others
        by a nested JVP and the Jacobian. Replaces stochman's version, which
        calls the removed ``torch.solve``.

        Args:
            c: (N, d) positions.
            dc: (N, d) velocities.

        Returns:
            (N, d) accelerations.
        """
        self.check_points(c, "c")
        if dc.shape != c.shape:
            raise ValueError(f"dc {tuple(dc.shape)} and c {tuple(c.shape)} differ in shape")

        self._count(c, 2 + self.latent_dim)
        fused = self._pulled_back_second_jets(c, dc)
        if fused is not None:
            metric, pulled = fused
        else:

            def along(z: torch.Tensor) -> torch.Tensor:
                return jvp(self._f, (z,), (dc,))[1]

            # in grad mode: without it torch's nested forward mode reaches backward kernels that have no
            # forward-mode rule (silu's: NotImplementedError under no_grad, as in the ODE solver)
            with torch.enable_grad():
                _, second = jvp(along, (c,), (dc,))  # (N, D): d^2/dt^2 f along c'
            second = second if torch.is_grad_enabled() else second.detach()
            _, J = self.embed(c, jacobian=True)  # (N, D, d)
            metric, pulled = J.transpose(-1, -2) @ J, (J.transpose(-1, -2) @ second.unsqueeze(-1)).squeeze(-1)
        return torch.linalg.solve(metric, -pulled.unsqueeze(-1)).squeeze(-1)

    def _pulled_back_second_jets(
        self, c: torch.Tensor, dc: torch.Tensor
    ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """The metric J^T J (..., d, d) and J^T D^2f(c)[dc, dc] (..., d) at c (..., d), by fused
        second-order jets; None when the mean or the std has no second-order rule.

        On the CPU the points go in chunks of :data:`SECOND_JET_ROWS` / (3 + d), and each chunk's
        products are taken while its Jacobian is in cache: the whole (N, D, d) Jacobian is never
        assembled (measured on fashion-2d, float64, one thread: assembling it and multiplying once cost
        86-100 us a point on meshes of 800-1,600 points against 60 on 100-400).
        """
        parts = [part for part in (self.mean, self.std) if part is not None]
        rules = [second_jet_rule(part) for part in parts]
        if any(rule is None for rule in rules):
            return None
        flat, velocity = c.reshape(-1, c.shape[-1]), dc.reshape(-1, c.shape[-1])
        d = self.latent_dim

        def evaluate(span: slice) -> list[tuple[torch.Tensor]]:
            n = len(flat[span])
            metric, pulled = 0, 0
            for rule in rules:  # each overwrites its own jet
                out = rule(second_basis_jet(flat[span], velocity[span]), n)
                tangents = out[n : (1 + d) * n].view(d, n, -1).transpose(0, 1)  # (n, d, D_k)
                metric = metric + tangents @ tangents.transpose(1, 2)
                pulled = pulled + tangents @ out[-n:].unsqueeze(-1)
            return [(torch.cat([metric, pulled], dim=-1).view(n, d * (d + 1)),)]

        chunk = max(1, SECOND_JET_ROWS // (3 + d))
        (both,) = _assembled_by_chunks(len(flat), flat.device, evaluate, chunk)
        both = both.view(*c.shape[:-1], d, d + 1)
        return both[..., :d], both[..., d]

    def connecting_geodesic(
        self,
        p0: torch.Tensor,
        p1: torch.Tensor,
        init_curve: Optional[BasicCurve] = None,
        method: object = None,
        **options,
    ) -> tuple[BasicCurve, bool]:
        """stochman's contract: ``(curve, success)`` for the geodesics from p0 to p1.

        ``method`` defaults to :data:`vaemanifold.solvers.DEFAULT_METHOD`, as in
        :func:`vaemanifold.connecting_geodesic`. ``success`` is True only when
        every pair converged; use :func:`vaemanifold.connecting_geodesic` for
        per-pair results.
        """
        if method is not None:
            options["method"] = method
        result = _GEODESIC_ENTRY[0](self, p0, p1, init=init_curve, **options)
        return result.curve, bool(result.converged.all())
