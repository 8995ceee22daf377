"""A Gaussian VAE whose decoder variance grows away from the data.

Encoder q(z|x) = N(m(x), diag s(x)^2) and decoder p(x|z) = N(mu(z), diag sigma(z)^2)
are MLPs with smooth activations (the geometry differentiates the decoder
twice). sigma(z) has two stages, one per training phase
(:mod:`vaemanifold.vae.training`):

1. a single learned global standard deviation while the encoder and the mean
   mu are trained. One scalar (rather than one per pixel) because the
   per-pixel maximum-likelihood variance of the almost-constant border pixels
   goes to zero and the likelihood to infinity; one scalar also balances the
   reconstruction term against the KL term by the ELBO itself instead of a
   hand-set weight.
2. the RBF precision network (:class:`~vaemanifold.vae.rbf.RBFPrecision`),
   fitted afterwards with the encoder and mu fixed. It is what
   :meth:`VAE.decode` and :meth:`VAE.manifold` use from then on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

from .._checks import check_choice
from .._files import atomic_write
from ..manifold import DecoderManifold
from .rbf import RBFPrecision

#: Checkpoints: ``torch.save`` of ``{"format", "version", "config", "state_dict", "metadata"}``.
CHECKPOINT_FORMAT = "vaemanifold.vae"
CHECKPOINT_VERSION = 1
#: File name of the model inside a model folder.
MODEL_FILE = "model.pt"

#: Smooth hidden activations (the expected metric's geodesic equation needs second derivatives).
ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU}
#: Output maps of the decoder mean, 'sigmoid' for data in [0, 1] (images) and 'identity' otherwise.
OUTPUTS = ("sigmoid", "identity")
#: Decoder means: an MLP mirroring the encoder, or transposed convolutions for square images.
DECODERS = ("mlp", "conv")
#: Channels of the convolutional decoder at a quarter and half of the image side.
CONV_CHANNELS = (32, 16)
LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    """Everything needed to rebuild a :class:`VAE` (stored in checkpoints).

    Attributes:
        data_dim: D.
        latent_dim: d.
        hidden: encoder widths; the decoder mean mirrors them.
        activation: 'tanh', 'softplus' or 'silu'.
        output: 'sigmoid' (data in [0, 1]) or 'identity'.
        num_centers: K, RBF centres of the variance network.
        bandwidth_scale: a in lambda_k = 0.5 (a * spread_k)^-2; larger a gives
            wider RBFs, so sigma starts to rise farther from the data.
        zeta: precision floor; far from the data sigma -> zeta^(-1/2).
        init_std: starting value of the phase-1 global standard deviation.
        decoder: 'mlp' (the encoder's widths reversed) or 'conv' (:class:`ConvDecoder`,
            for square one-channel images whose side is a multiple of 4).
    """

    data_dim: int
    latent_dim: int = 2
    hidden: Sequence[int] = field(default=(256, 128))
    activation: str = "tanh"
    output: str = "sigmoid"
    num_centers: int = 64
    bandwidth_scale: float = 1.0
    zeta: float = 1e-2
    init_std: float = 0.2
    decoder: str = "mlp"

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("output", self.output, OUTPUTS)
        check_choice("decoder", self.decoder, DECODERS)
        side = round(self.data_dim**0.5)
        if self.decoder == "conv" and (side * side != self.data_dim or side % 4):
            raise ValueError(f"the 'conv' decoder needs square images with a side divisible by 4; data_dim={self.data_dim}")
        if self.data_dim < 1 or self.latent_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"data_dim, latent_dim and hidden widths must be >= 1: {self}")
        if self.bandwidth_scale <= 0 or self.zeta <= 0 or self.init_std <= 0:
            raise ValueError("bandwidth_scale, zeta and init_std must be positive")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


def mlp(sizes: Sequence[int], activation: str, output: Optional[nn.Module] = None) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (not after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    if output is not None:
        layers.append(output)
    return nn.Sequential(*layers)


class ConvDecoder(nn.Module):
    """A decoder mean for square one-channel images: (..., d) -> (..., side * side).

    A linear map to CONV_CHANNELS[0] maps of side / 4, then two stride-2 transposed
    convolutions (kernel 4) up to the full side, with smooth activations between them.
    """

    def __init__(self, latent_dim: int, side: int, activation: str, output: Optional[nn.Module]) -> None:
        super().__init__()
        wide, narrow = CONV_CHANNELS
        quarter = side // 4
        act = ACTIVATIONS[activation]
        self.net = nn.Sequential(
            nn.Linear(latent_dim, wide * quarter * quarter), act(), nn.Unflatten(-1, (wide, quarter, quarter)),
            nn.ConvTranspose2d(wide, narrow, 4, 2, 1), act(), nn.ConvTranspose2d(narrow, 1, 4, 2, 1),
            *([output] if output is not None else []), nn.Flatten(-3),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)


class VAE(nn.Module):
    """Gaussian VAE with an RBF precision network (see the module docstring).

    Buffers filled by training: ``latents`` (N, d) posterior means of the
    training data, ``labels`` (N,) their labels (-1 when unknown),
    ``variance_fitted`` whether phase 2 has run. ``metadata`` is a dict kept
    with checkpoints.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        d, D = config.latent_dim, config.data_dim
        self.encoder = mlp((D, *config.hidden, 2 * d), config.activation)
        out = nn.Sigmoid() if config.output == "sigmoid" else None
        if config.decoder == "conv":
            self.decoder_mean = ConvDecoder(d, round(D**0.5), config.activation, out)
        else:
            self.decoder_mean = mlp((d, *reversed(config.hidden), D), config.activation, out)
        self.log_std = nn.Parameter(torch.tensor(math.log(config.init_std)))
        self.variance = RBFPrecision(d, D, config.num_centers, config.zeta)
        self.register_buffer("latents", torch.zeros(0, d))
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("variance_fitted", torch.tensor(False))
        #: Extras stored with a checkpoint (data set, schedule, history summary).
        self.metadata: dict = {}

    @property
    def device(self) -> torch.device:
        return self.log_std.device

    def _check_input(self, x: torch.Tensor, size: int, name: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != size:
            raise ValueError(f"{name} must have shape (..., {size}), got {tuple(x.shape)}")

    # ----------------------------------------------------------------- networks
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z|x): (..., D) -> mean (..., d), std (..., d)."""
        self._check_input(x, self.config.data_dim, "x")
        mean, raw = self.encoder(x).chunk(2, dim=-1)
        return mean, nn.functional.softplus(raw) + 1e-5

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Likelihood p(x|z): (..., d) -> mean (..., D), std (..., D).

        The std is the RBF network's once phase 2 has run, the global phase-1
        std before.
        """
        self._check_input(z, self.config.latent_dim, "z")
        mean = self.decoder_mean(z)
        std = self.variance(z) if bool(self.variance_fitted) else self.log_std.exp().expand_as(mean)
        return mean, std

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over dimensions: (N, D), (N, d) -> (N,)."""
        mean = self.decoder_mean(z)
        if bool(self.variance_fitted):
            log_precision = self.variance.precision(z).log()
            terms = log_precision - log_precision.exp() * (x - mean) ** 2
        else:
            terms = -2 * self.log_std - ((x - mean) / self.log_std.exp()) ** 2
        return 0.5 * (terms - LOG_2PI).sum(dim=-1)

    def elbo(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One-sample ELBO per row, E_q[log p(x|z)] - KL(q(z|x) || N(0, I)): (N, D) -> (N,).

        ``generator`` (on the model's device) makes the sample reproducible.
        """
        self._check_input(x, self.config.data_dim, "x")
        mean, std = self.encode(x)
        z = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        kl = 0.5 * (mean**2 + std**2 - 1 - 2 * std.log()).sum(dim=-1)
        return self.log_likelihood(x, z) - kl

    # ----------------------------------------------------------------- geometry
    def manifold(self) -> DecoderManifold:
        """The latent space with the expected metric of (mu, sigma) and the training codes as ``latents``."""
        if not bool(self.variance_fitted):
            raise RuntimeError("the variance network is not fitted yet (training phase 2); its metric would ignore sigma")
        latents = self.latents if len(self.latents) else None
        return DecoderManifold(self.decoder_mean, self.variance, latents=latents, latent_dim=self.config.latent_dim)

    def far_points(self, count: int = 64, radii: float = 3.0, seed: int = 0) -> torch.Tensor:
        """(count, d) points ``radii`` of the widest cluster's spread beyond the farthest training code.

        Directions are spread evenly on the circle for d = 2 and drawn at
        random (seeded) otherwise. Used to check that sigma rises far from the data.
        """
        if not len(self.latents):
            raise RuntimeError("the model has no training codes yet")
        d = self.config.latent_dim
        centre = self.latents.mean(dim=0)
        reach = (self.latents - centre).norm(dim=-1).max()
        spread = (0.5 / self.variance.bandwidths).sqrt().max() / self.config.bandwidth_scale
        if d == 2:
            angle = torch.linspace(0, 2 * math.pi, count + 1, device=self.device)[:-1]
            directions = torch.stack([angle.cos(), angle.sin()], dim=-1)
        else:
            generator = torch.Generator().manual_seed(seed)
            directions = torch.randn(count, d, generator=generator).to(self.device)
            directions = directions / directions.norm(dim=-1, keepdim=True)
        return centre + (reach + radii * spread) * directions

    # ----------------------------------------------------------------- files
    def save(self, path: Union[str, Path], metadata: Optional[dict] = None) -> Path:
        """Write a checkpoint atomically (read by :func:`vaemanifold.vae.checkpoint.load`); returns the file written.

        ``path`` is a file, or a folder (an existing one, or a name without a suffix) that gets
        ``model.pt``. ``metadata`` defaults to ``self.metadata``.
        """
        path = Path(path)
        if path.is_dir() or path.suffix == "":
            path = path / MODEL_FILE
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "state_dict": {key: value.detach().cpu() for key, value in self.state_dict().items()},
            "metadata": dict(self.metadata if metadata is None else metadata),
        }
        atomic_write(path, lambda stream: torch.save(payload, stream))
        return path
