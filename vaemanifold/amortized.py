"""Amortised geodesics: one network for every pair of a latent space.

g(t; z0, z1) = (1-t) z0 + t z1 + t(1-t) psi(t, z0, z1; theta), one network
shared by all pairs. Trained once on a latent space
(:meth:`GeodesicNetwork.fit`), it answers any pair with one forward pass; the
``"amortized"`` solver returns its curves as they are or refines them with
the Gauss-Newton solver.

psi is a neural network of (t, z0, z1) whose dependence on t is a fixed sine
series: an MLP of the ends gives K coefficient vectors c_k(z0, z1) and

    g(t) = (1-t) z0 + t z1 + ||z1 - z0|| sum_k c_k sin(k pi t),

i.e. psi = ||z1 - z0|| sum_k c_k sin(k pi t) / (t(1-t)), smooth and exact at
both ends. The MLP runs once per pair, not once per pair and time: measured
on mnist-2d, a step of fitting costs 1/27 of an MLP taking t as an input
(128-wide, 65 times a curve), which buys far more training in the same
minutes. The coefficients are symmetrised, c_k(z0, z1) = (m_k(z0, z1) +
(-1)^(k+1) m_k(z1, z0)) / 2, so the curve from z1 to z0 is the curve from z0
to z1 reversed, as for a geodesic; the chord factor makes a pair with equal
ends the constant curve.

With ``heads`` = H > 1 the MLP gives H such curves per pair (multiple
hypotheses): fitting moves, for each target geodesic, mainly the head
closest to it (winner takes all), and a pair's answer is whichever of its H
curves is shortest on a coarse grid (:meth:`GeodesicNetwork.select_heads`,
H x :data:`HEAD_GRID` decoder points). Measured on mnist-2d (docs:
"Amortised geodesics"), 8 heads cut the tail of the raw curves' lengths;
the winning head is not predictable from the ends by a learned gate, so it
is chosen by measuring.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from stochman.curves import BasicCurve
from torch import nn

from ._checks import check_points
from ._files import atomic_write
from .curves import ACTIVATIONS, _as_batched_times, _check_activation, line_points
from .manifold import DecoderManifold
from .progress import progress
from .solvers.energy import curve_energy, sample_times
from .solvers.gauss_newton import GaussNewtonSolver

#: The ``format`` entry of a saved network.
FORMAT = "vaemanifold.geodesic_network"
VERSION = 2  # 2: heads (a version-1 file, without them, reads as one head)
#: File name of a network saved beside a model (``vaemanifold amortize``).
NETWORK_FILE = "geodesic_network.pt"
#: Latent points at which the decoder is fingerprinted (in units of the codes' spread about their centre).
FINGERPRINT_POINTS = 4
#: Relative tolerance of the fingerprint comparison (float32 decoders on other hardware differ by ~1e-6).
FINGERPRINT_RTOL = 1e-3
#: Times at which distilled curves are compared, and pairs solved at once while distilling (memory).
DISTILL_TIMES, DISTILL_CHUNK = 65, 64
#: With several heads, every head also learns every target with this weight (the winner with the rest), so
#: that no head is left where no target pulls it.
SHARED_WEIGHT = 0.05
#: Points a pair's head is chosen on (the shortest polyline through them): on 48 held-out mnist-2d pairs, 16
#: points chose as well as 32 and 64 did.
HEAD_GRID = 16

PathLike = Union[str, Path]


class NetworkError(ValueError):
    """A file that is not a readable geodesic network, or a network used with another manifold."""


class GeodesicNetwork(nn.Module):
    """Curves g(t; z0, z1) for every pair of one latent space (see the module docstring).

    Args:
        latent_dim: d.
        hidden: hidden widths of the MLP of the ends (default (128, 128, 128)).
        modes: K, sine modes of the curve in t (default 24).
        activation: 'tanh' (default), 'softplus' or 'sigmoid' (smooth, like every curve's).
        heads: H, curves per pair (default 1; see the module docstring).
        center, spread: (d,) and () standardisation of the ends fed to the MLP,
            (z - center) / spread; :meth:`fit` sets them from the codes.

    Buffers ``center``, ``spread`` and ``fingerprint`` (the decoder's images of
    a few probe points, set by :meth:`fit`) are saved with the weights.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int] = (128, 128, 128),
        modes: int = 24,
        activation: str = "tanh",
        heads: int = 1,
        center: Optional[torch.Tensor] = None,
        spread: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        hidden = tuple(int(h) for h in hidden)
        if min(int(latent_dim), int(modes), int(heads)) < 1 or not hidden or min(hidden) < 1:
            raise ValueError(
                f"latent_dim, modes, heads and the hidden widths must be positive, got {latent_dim}, {modes}, {heads}, {hidden}"
            )
        self.latent_dim, self.hidden, self.modes, self.activation = int(latent_dim), hidden, int(modes), activation
        self.heads = int(heads)
        sizes = (2 * self.latent_dim, *hidden, self.heads * self.modes * self.latent_dim)
        self.layers = nn.ModuleList(nn.Linear(m, n) for m, n in zip(sizes[:-1], sizes[1:]))
        nn.init.zeros_(self.layers[-1].bias)  # an untrained network gives the straight line (one head: exactly)
        if self.heads == 1:
            nn.init.zeros_(self.layers[-1].weight)
        else:  # heads must differ from the start, or winner-takes-all fitting could never tell them apart
            nn.init.normal_(self.layers[-1].weight, std=1e-3)
        self.register_buffer("center", torch.zeros(self.latent_dim) if center is None else center.detach().clone())
        self.register_buffer("spread", torch.ones(()) if spread is None else spread.detach().clone().reshape(()))
        self.register_buffer("fingerprint", torch.zeros(0))

    # ------------------------------------------------------------------ the curve
    def _mlp(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """m(a, b) for standardised ends a, b (B, d) -> (B, H, K, d)."""
        x = torch.cat([a, b], dim=-1)
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x).view(len(a), self.heads, self.modes, self.latent_dim)

    def coefficients(self, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """||z1 - z0|| c_k(z0, z1): the sine coefficients of every head's curves, (B, H, K, d), symmetrised."""
        a, b = (z0 - self.center) / self.spread, (z1 - self.center) / self.spread
        k = torch.arange(1, self.modes + 1, device=z0.device)
        parity = torch.where(k % 2 == 1, 1.0, -1.0).to(z0.dtype).view(1, 1, -1, 1)  # sin(k pi (1-t)) = (-1)^(k+1) sin(k pi t)
        c = 0.5 * (self._mlp(a, b) + parity * self._mlp(b, a))
        return (z1 - z0).norm(dim=-1).view(-1, 1, 1, 1) * c

    def _modes(self, t: torch.Tensor) -> torch.Tensor:
        """k pi t for k = 1..K: t (..., N) -> (..., N, K)."""
        k = torch.arange(1, self.modes + 1, dtype=t.dtype, device=t.device)
        return math.pi * k * t.unsqueeze(-1)

    def _check_heads(self, head: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
        """``head`` as (batch,) head indices, or None for a one-head network; a clear error otherwise."""
        if head is None:
            if self.heads > 1:
                raise ValueError(
                    f"this network has {self.heads} heads: give each pair's head (select_heads(manifold, z0, z1) "
                    "chooses the shortest)"
                )
            return None
        head = torch.as_tensor(head).reshape(-1)
        if len(head) != batch or head.dtype.is_floating_point or bool(((head < 0) | (head >= self.heads)).any()):
            raise ValueError(f"head must hold {batch} head indices in [0, {self.heads}), got {head.tolist()}")
        return head

    def _head_coefficients(self, z0: torch.Tensor, z1: torch.Tensor, head: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, K, d) coefficients of each pair's head: head (B,) indices, or None with a single head."""
        head, c = self._check_heads(head, len(z0)), self.coefficients(z0, z1)
        return c[:, 0] if head is None else c[torch.arange(len(c), device=c.device), head.to(c.device)]

    def points(self, t: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor, head: Optional[torch.Tensor] = None) -> torch.Tensor:
        """g(t; z0, z1): t (B, N), z0, z1 (B, d), head (B,) (None: the only head) -> (B, N, d)."""
        return line_points(z0, z1, t) + torch.sin(self._modes(t)) @ self._head_coefficients(z0, z1, head)

    def velocities(self, t: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor, head: Optional[torch.Tensor] = None) -> torch.Tensor:
        """g'(t; z0, z1) (B, N, d), exact."""
        k = torch.arange(1, self.modes + 1, dtype=t.dtype, device=t.device)
        slopes = math.pi * k * torch.cos(self._modes(t))
        return (z1 - z0).unsqueeze(1) + slopes @ self._head_coefficients(z0, z1, head)

    def all_points(self, t: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """Every head's curve: t (N,), z0, z1 (B, d) -> (B, H, N, d)."""
        line = line_points(z0, z1, t).unsqueeze(1)
        return line + torch.sin(self._modes(t)) @ self.coefficients(z0, z1)

    def select_heads(self, manifold: DecoderManifold, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """(B,) each pair's shortest head, by the length of its polyline through :data:`HEAD_GRID` points."""
        t = torch.linspace(0, 1, HEAD_GRID, dtype=z0.dtype, device=z0.device)
        with torch.no_grad():
            points = self.all_points(t, z0, z1)
            lengths = manifold.curve_length(points.reshape(-1, HEAD_GRID, self.latent_dim)).view(len(z0), self.heads)
        return lengths.nan_to_num(float("inf")).argmin(dim=1)

    def curve(self, z0: torch.Tensor, z1: torch.Tensor, head: Optional[torch.Tensor] = None) -> "NetworkCurve":
        """The B curves from z0 (B, d) to z1 (B, d), of heads ``head`` (B,), as a stochman ``BasicCurve``."""
        return NetworkCurve(z0, z1, network=self, head=head)

    # -------------------------------------------------------- the manifold it fits
    def probe_points(self) -> torch.Tensor:
        """(FINGERPRINT_POINTS, d) fixed latent points about the codes, where the decoder is fingerprinted."""
        generator = torch.Generator().manual_seed(0)
        unit = torch.randn(FINGERPRINT_POINTS, self.latent_dim, generator=generator, dtype=torch.float64)
        return self.center.double().cpu() + self.spread.double().cpu() * unit

    def decoder_images(self, manifold: DecoderManifold) -> torch.Tensor:
        """f(probe points) of ``manifold``'s decoder, flattened, float64 on the CPU."""
        like = next(iter(manifold.parameters()), self.center)
        with torch.no_grad():
            images = manifold.embed(self.probe_points().to(like.device, like.dtype if like.is_floating_point() else None))
        return images.double().cpu().flatten()

    def check_manifold(self, manifold: DecoderManifold) -> None:
        """Refuse a manifold of another latent dimension, or whose decoder differs from the one fitted."""
        if manifold.latent_dim != self.latent_dim:
            raise NetworkError(
                f"this geodesic network was fitted on a {self.latent_dim}-dimensional latent space; "
                f"the manifold's is {manifold.latent_dim}-dimensional"
            )
        if not len(self.fingerprint):
            return
        images, expected = self.decoder_images(manifold), self.fingerprint.double().cpu()
        if images.shape != expected.shape or not torch.allclose(
            images, expected, rtol=FINGERPRINT_RTOL, atol=FINGERPRINT_RTOL * float(expected.abs().mean())
        ):
            raise NetworkError(
                "this geodesic network was fitted on another decoder (its images of the fingerprint points "
                "differ); fit one for this manifold with GeodesicNetwork.fit or `vaemanifold amortize`"
            )

    # ------------------------------------------------------------------- files
    def save(self, path: PathLike) -> Path:
        """Write the network to ``path`` atomically; read it back with :meth:`load`."""
        path = Path(path)
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "config": {
                "latent_dim": self.latent_dim,
                "hidden": list(self.hidden),
                "modes": self.modes,
                "activation": self.activation,
                "heads": self.heads,
            },
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        atomic_write(path, lambda stream: torch.save(payload, stream))
        return path

    @classmethod
    def load(cls, path: PathLike, map_location: Optional[Union[str, torch.device]] = None) -> "GeodesicNetwork":
        """Read a network written by :meth:`save` (``weights_only``: loading runs no code).

        Raises:
            FileNotFoundError: no such file.
            NetworkError: (a ValueError) not a readable geodesic network file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no geodesic network at {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many kinds: zip, pickle, EOF, runtime
            raise NetworkError(f"{path} is not a readable torch file ({type(error).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise NetworkError(f"{path} is not a vaemanifold geodesic network")
        if not isinstance(payload.get("version"), int) or payload["version"] > VERSION:
            raise NetworkError(f"{path} has format version {payload.get('version')!r}; this vaemanifold reads up to {VERSION}")
        try:
            state = payload["state_dict"]
            network = cls(**payload["config"]).to(state["center"].dtype)
            network.fingerprint = torch.empty_like(state["fingerprint"])
            network.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise NetworkError(f"{path} is a damaged geodesic network: {error}") from None
        return network.to(map_location) if map_location is not None else network

    # -------------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        manifold: DecoderManifold,
        points: torch.Tensor,
        *,
        seconds: float = 170.0,
        distill: int = 2048,
        distill_steps: int = 10000,
        energy_steps: int = 0,
        batch: int = 128,
        times: int = 16,
        jitter: float = 0.1,
        lr: float = 1e-3,
        seed: int = 0,
        show_progress: bool = True,
        network: Optional["GeodesicNetwork"] = None,
        **architecture,
    ) -> "GeodesicNetwork":
        """Fit a network to ``manifold``'s geodesics between codes like ``points``.

        Three phases, within ``seconds`` in all (each stops early when the
        budget is spent; what it did is kept):

        1. *Targets*: the Gauss-Newton solver (its defaults) connects
           up to ``distill`` random pairs of ``points``, DISTILL_CHUNK at a time,
           for at most two thirds of the budget; unconverged pairs are dropped.
        2. *Distillation*: ``distill_steps`` Adam steps (learning rate from
           ``lr`` to 0 on a cosine over the steps or the time left, whichever
           runs out first) on ``batch`` target curves a step, minimising the mean
           squared distance between the network's curve and the target at
           DISTILL_TIMES times, relative to the chord (with several heads, the
           closest head's, plus SHARED_WEIGHT of every head's).
        3. *Energy* (``energy_steps`` > 0): Adam (lr / 10 after distillation, else lr) on the mean log
           curve energy of ``batch`` fresh pairs a step, each end a random code
           moved by Gaussian noise of ``jitter`` times the codes' spread, the
           energy estimated at ``times`` stratified times per curve with exact
           velocities (one decoder JVP per time and head). The log weighs short and long
           pairs alike; with several heads, as in distillation, the lowest head's.

        The defaults were chosen by measurement on mnist-2d (docs: "Amortised
        geodesics"): distilling more pairs helped most; the energy phase, on
        its own or after distillation, did not improve held-out lengths within
        the budget, so it is off by default. Without targets (``distill=0``)
        only the energy phase trains the network.

        Args:
            manifold: the latent space.
            points: (N, d) latent codes, N >= 2.
            seed: seeds the pairs, the noise, the times and the weights.
            show_progress: progress bars (sparse lines when not on a terminal).
            network: go on fitting this network (e.g. one loaded from a file),
                in place, instead of a new one; its standardisation is kept.
            **architecture: ``hidden``, ``modes``, ``activation``, ``heads`` of a new network.

        Returns:
            the fitted network (eval mode, on the codes' device and dtype).
        """
        check_points(points, manifold.latent_dim, "points")
        if points.dim() != 2 or len(points) < 2:
            raise ValueError(f"points must be (N, d) codes with N >= 2, got shape {tuple(points.shape)}")
        for name, value in (("seconds", seconds), ("batch", batch), ("times", times), ("lr", lr)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name, value in (("distill", distill), ("distill_steps", distill_steps), ("energy_steps", energy_steps), ("jitter", jitter)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        deadline = time.perf_counter() + seconds
        points = points.detach()
        generator = torch.Generator().manual_seed(seed)
        if network is None:
            center = points.mean(dim=0)
            spread = (points - center).norm(dim=-1).pow(2).mean().sqrt() / math.sqrt(points.shape[1])
            with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's random state is left as it was
                torch.manual_seed(seed)
                network = cls(manifold.latent_dim, center=center, spread=spread, **architecture)
        elif architecture:
            raise ValueError(f"{sorted(architecture)} cannot change the architecture of a given network")
        elif network.latent_dim != manifold.latent_dim:
            raise NetworkError(f"network is for d = {network.latent_dim}, the manifold's d = {manifold.latent_dim}")
        network = network.to(points).train()
        network.fingerprint = network.decoder_images(manifold)
        spread = network.spread

        def pairs(count: int, noise: float = jitter) -> tuple[torch.Tensor, torch.Tensor]:
            """``count`` random pairs of codes, each end moved by N(0, (noise * spread)^2 I)."""
            index = torch.randint(len(points), (2, count), generator=generator).to(points.device)
            shift = noise * spread * torch.randn(2, count, points.shape[1], generator=generator).to(points)
            return points[index[0]] + shift[0], points[index[1]] + shift[1]

        with manifold.frozen():
            if distill:
                z0, z1, targets = _targets(manifold, *pairs(distill, 0.0), deadline - seconds / 3, show_progress)
                _distil(network, z0, z1, targets, distill_steps, batch, lr, generator, deadline, show_progress)
            if energy_steps:
                step_lr = lr / 10 if distill else lr  # a distilled network is fine-tuned, a new one trained
                _minimise_energy(network, manifold, pairs, energy_steps, batch, times, step_lr, generator, deadline, show_progress)
        if not all(bool(torch.isfinite(p).all()) for p in network.parameters()):
            raise RuntimeError("fitting the geodesic network diverged (non-finite weights); try a smaller lr")
        return network.eval()


def _targets(manifold, z0, z1, deadline: float, show_progress: bool):
    """Gauss-Newton curves of the pairs at DISTILL_TIMES times, chunk by chunk until ``deadline``.

    Returns the converged pairs' (P, d) ends and (P, DISTILL_TIMES, d) points (pairs with equal ends dropped).
    """
    t = torch.linspace(0, 1, DISTILL_TIMES, dtype=z0.dtype, device=z0.device)
    # the solver's defaults: coarser, looser targets (levels 16, 32; tol 2e-3) solved 3x the pairs in the same
    # time but made refining the network's curves dearer (docs: "Amortised geodesics")
    solver, kept = GaussNewtonSolver(), []
    bar = progress(range(0, len(z0), DISTILL_CHUNK), "geodesics to distil", "chunk", enabled=show_progress)
    for first in bar:
        if time.perf_counter() > deadline:
            break
        a, b = z0[first : first + DISTILL_CHUNK], z1[first : first + DISTILL_CHUNK]
        out = solver.solve(manifold, a, b)
        with torch.no_grad():
            curves = out.curve(t).reshape(len(a), len(t), -1)
        ok = out.converged.to(a.device) & ((b - a).norm(dim=-1) > 0)  # a pair with equal ends teaches nothing
        kept.append((a[ok], b[ok], curves[ok]))
    bar.close()
    if not kept or not sum(len(a) for a, _, _ in kept):
        raise RuntimeError("no target geodesic was solved within the time budget: give fit more seconds")
    return tuple(torch.cat(parts) for parts in zip(*kept))


def _minimise_energy(network, manifold, pairs, steps: int, batch: int, times: int, lr: float, generator, deadline: float, show_progress: bool):
    """Adam on the mean log curve energy of ``batch`` fresh ``pairs()`` a step (see fit)."""
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    bar = progress(range(steps), "energy", "step", enabled=show_progress)
    for _ in bar:
        if time.perf_counter() > deadline:
            break
        z0, z1 = pairs(batch)
        H = network.heads
        head = torch.arange(H, device=z0.device).repeat(batch)  # every head of every pair
        t = sample_times(times, batch * H, "stratified", "jvp", generator, z0)
        curves = network.curve(z0.repeat_interleave(H, dim=0), z1.repeat_interleave(H, dim=0), head)
        energy = curve_energy(manifold, curves, t, "jvp").view(batch, H)
        loss = _winner_takes_all(energy.clamp_min(torch.finfo(energy.dtype).tiny).log())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        bar.set_postfix(log_energy=f"{loss.item():.3f}")
    bar.close()


def _winner_takes_all(loss: torch.Tensor) -> torch.Tensor:
    """The fitting loss from (B, H) losses of every head: each pair's best head, plus SHARED_WEIGHT of all.

    With one head, the mean loss.
    """
    return (1 - SHARED_WEIGHT) * loss.min(dim=1).values.mean() + SHARED_WEIGHT * loss.mean()


def _distil(network, z0, z1, targets, steps: int, batch: int, lr: float, generator, deadline: float, show_progress: bool):
    """Adam on the relative squared distance between the network's curves and ``targets`` (see fit)."""
    t = torch.linspace(0, 1, targets.shape[1], dtype=z0.dtype, device=z0.device)
    chord = (z1 - z0).norm(dim=-1).view(-1, 1, 1)
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    start = time.perf_counter()
    bar = progress(range(steps), f"distilling {len(z0)} geodesics", "step", enabled=show_progress)
    for step in bar:
        now = time.perf_counter()
        if now > deadline:
            break
        # a cosine decay over the steps, or over the steps the time left allows at the mean step time so far
        # when those are fewer: it ends annealed on any machine, and is exactly the step schedule when time suffices
        horizon = min(steps, step + (deadline - now) * step / (now - start)) if step else steps
        optimiser.param_groups[0]["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / horizon))
        index = torch.randint(len(z0), (min(batch, len(z0)),), generator=generator).to(z0.device)
        error = (network.all_points(t, z0[index], z1[index]) - targets[index].unsqueeze(1)) / chord[index].unsqueeze(1)
        loss = _winner_takes_all(error.pow(2).sum(dim=-1).mean(dim=-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.2e}")
    bar.close()


class NetworkCurve(BasicCurve):
    """The curves of a :class:`GeodesicNetwork` for B pairs (stochman ``BasicCurve``).

    ``forward(t)``: t (N,) or (B, N) -> (B, N, d) (squeezed to (N, d) for one
    curve and 1-D t); ``deriv(t)`` -> (B, N, d), exact. ``head``: (B,) each
    pair's head (None for a one-head network). The network is shared, not
    copied: training it changes the curve.
    """

    def __init__(self, begin: torch.Tensor, end: torch.Tensor, network: GeodesicNetwork, head: Optional[torch.Tensor] = None) -> None:
        super().__init__(begin, end, 2, False, network=network, head=head)

    def _init_params(self, network: GeodesicNetwork, head: Optional[torch.Tensor]) -> None:
        self.network, self.head = network, network._check_heads(head, len(self.begin))

    @property
    def device(self) -> torch.device:
        return self.begin.device

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        tt, one_d = _as_batched_times(t, len(self), self.begin)
        g = self.network.points(tt, self.begin, self.end, self.head)
        return g.squeeze(0) if one_d and len(self) == 1 else g

    def deriv(self, t: torch.Tensor) -> torch.Tensor:
        return self.network.velocities(_as_batched_times(t, len(self), self.begin)[0], self.begin, self.end, self.head)

    def __getitem__(self, indices) -> "NetworkCurve":
        begin, end = self.begin[indices], self.end[indices]
        head = None if self.head is None else self.head[indices]
        if begin.dim() == 1:
            begin, end = begin.unsqueeze(0), end.unsqueeze(0)
            head = None if head is None else head.reshape(1)
        return NetworkCurve(begin, end, self.network, head)
