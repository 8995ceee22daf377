"""Two-phase training of :class:`~vaemanifold.vae.model.VAE` (Arvanitidis et al. 2017).

Phase 1 trains the encoder and the decoder mean by the ELBO (Adam,
mini-batches) with one learned global standard deviation. Phase 2 fixes
them, places the RBF centres by k-means on the posterior means of the
training data and fits the precision weights W by the same ELBO. Its only
W-dependent term is E_q[log p(x|z)], estimated with S posterior samples per
point drawn once; with r = x - mu(z) it is, per output dimension d,

    (1/2) sum_n [log beta_d(z_n) - beta_d(z_n) r_nd^2] + const,   beta_d(z) = sum_k W_dk v_k(z) + zeta,

concave in W >= 0. Phase 2 maximises it by the minorise-maximise (EM)
update W_dk <- W_dk (sum_n v_nk / beta_nd) / (sum_n v_nk r_nd^2): every step
raises the objective, W stays positive, there is no learning rate, and one
step costs two (N S, K) x (K, D) products. It starts from the per-cluster
precisions of :meth:`~vaemanifold.vae.rbf.RBFPrecision.init_weights`.
Phase 2 is :func:`~vaemanifold.vae.calibration.fit_precision`, the routine
behind the public post-hoc :func:`~vaemanifold.vae.calibration.calibrate_std`
for any pretrained decoder.
Fitting the mean first matters: trained jointly, a flexible variance
explains reconstruction errors away instead of the mean fitting the data.

Phase 2 adds ``noise_std ** 2`` to every squared residual: the data are taken
to carry that much noise. Without it the maximum-likelihood sigma of pixels
that are 0 in every training image is zero (measured: min sigma 0, and a
held-out ELBO of -118,920 nats per image on mnist-2d, one unseen stroke pixel
costs thousands of nats). With it the fitted precision of a cluster is at
most noise_std^-2 while sigma = beta^(-1/2) keeps its form. The default
0.02 (five grey levels of an 8-bit image) maximised the held-out ELBO of
mnist-2d among 0, 0.01, 0.02, 0.05, 0.1 (-118,920, 660, 859, 749, 522 nats;
training ELBO 2060, 1497, 1266, 905, 595).

Same seed, same data, same device and thread count -> identical weights:
initial weights come from a forked global RNG (the caller's stream is left
alone) and every random draw of training from one seeded generator.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch

from .._files import atomic_write
from ..device import default_device
from ..progress import progress
from .calibration import fit_precision
from .model import VAE, VAEConfig

#: Rows per forward pass when evaluating a whole dataset.
EVAL_CHUNK = 4096


@dataclass
class TrainConfig:
    """How to train (the model's shape is a :class:`VAEConfig`).

    Attributes:
        epochs: phase-1 epochs (encoder + decoder mean).
        batch_size: phase-1 samples per step.
        lr: Adam learning rate of phase 1.
        variance_iterations: at most this many phase-2 updates (RBF precision weights).
        variance_samples: posterior samples per training point in phase 2.
        variance_tol: phase 2 stops when an update changes its loss by less than this (relative).
        noise_std: data noise assumed by phase 2, in data units (see the module docstring).
        seed: seed of the initial weights, shuffling, noise and k-means.
    """

    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    variance_iterations: int = 200
    variance_samples: int = 4
    variance_tol: float = 1e-5
    noise_std: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.variance_iterations, self.variance_samples) < 1:
            raise ValueError(f"epochs, batch_size, variance_iterations and variance_samples must be >= 1: {self}")
        if self.lr <= 0 or self.variance_tol <= 0 or self.noise_std < 0:
            raise ValueError(f"lr and variance_tol must be positive and noise_std >= 0: {self}")


@dataclass
class TrainingHistory:
    """Training curves and the final evaluation.

    Attributes:
        mean_phase: per phase-1 epoch: ``loss`` (-ELBO per sample), ``nll``, ``kl``, ``std``.
        variance_phase: per phase-2 update: ``loss`` (-E_q log p(x|z) per sample).
        seconds: wall time of ``mean``, ``variance`` (k-means included) and ``total``.
        summary: :func:`evaluate` on the training data after both phases.
        device: where it was trained; threads: torch's intra-op threads.
    """

    mean_phase: list[dict] = field(default_factory=list)
    variance_phase: list[dict] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    device: str = ""
    threads: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingHistory":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def save(self, path: Union[str, Path]) -> Path:
        """Write the history as JSON (atomically) and return the path."""
        path = Path(path)
        atomic_write(path, lambda handle: handle.write(json.dumps(self.to_dict(), indent=1).encode()))
        return path


def _batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device):
    order = torch.randperm(n, generator=generator, device=device)
    return order.split(batch_size)


@torch.no_grad()
def encode_means(model: VAE, X: torch.Tensor) -> torch.Tensor:
    """Posterior means of the rows of X: (N, D) -> (N, d), in chunks."""
    return torch.cat([model.encode(part)[0] for part in X.split(EVAL_CHUNK)])


@torch.no_grad()
def evaluate(model: VAE, X: torch.Tensor, seed: int = 0) -> dict:
    """ELBO and reconstruction error of a trained model on X (N, D).

    Returns a dict: ``elbo`` (nats per sample, one seeded posterior sample
    each), ``kl`` (nats per sample), ``recon_mse`` (mean squared error per
    dimension of mu(posterior mean)), ``recon_rmse``, ``sigma_ratio`` (see
    :func:`sigma_ratio`, when the variance is fitted), ``n``.
    """
    model.eval()
    X = X.to(model.device)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    elbo, kl, squared = 0.0, 0.0, 0.0
    for part in X.split(EVAL_CHUNK):
        elbo += model.elbo(part, generator).sum().item()
        mean, std = model.encode(part)
        kl += 0.5 * (mean**2 + std**2 - 1 - 2 * std.log()).sum().item()
        squared += ((model.decoder_mean(mean) - part) ** 2).sum().item()
    n = len(X)
    out = {"elbo": elbo / n, "kl": kl / n, "recon_mse": squared / X.numel(), "n": n}
    out["recon_rmse"] = math.sqrt(out["recon_mse"])
    if bool(model.variance_fitted) and len(model.latents):
        out["sigma_ratio"] = sigma_ratio(model)
    return out


@torch.no_grad()
def sigma_ratio(model: VAE, radii: float = 3.0) -> float:
    """How much larger sigma is far from the data than at the training codes.

    The smallest mean-over-dimensions sigma at :meth:`VAE.far_points` (``radii``
    widest-cluster spreads beyond the farthest code) divided by the median of
    the same at the training codes. The geometry needs it >= 10.
    """
    _, far = model.decode(model.far_points(radii=radii))
    _, near = model.decode(model.latents)
    return (far.mean(dim=-1).min() / near.mean(dim=-1).median()).item()


def _phase_mean(model, X, schedule, generator, progress) -> list[dict]:
    params = [p for name, p in model.named_parameters() if not name.startswith("variance.")]
    optimizer = torch.optim.Adam(params, lr=schedule.lr)
    history = []
    bar = _progress(schedule.epochs, "phase 1: encoder + mean", progress)
    for _ in bar:
        totals = torch.zeros(3, device=X.device)
        for index in _batches(len(X), schedule.batch_size, generator, X.device):
            x = X[index]
            mean, std = model.encode(x)
            z = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            nll = -model.log_likelihood(x, z)
            kl = 0.5 * (mean**2 + std**2 - 1 - 2 * std.log()).sum(dim=-1)
            loss = (nll + kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([loss.detach(), nll.detach().mean(), kl.detach().mean()]) * len(index)
        loss, nll, kl = (totals / len(X)).tolist()
        history.append({"loss": loss, "nll": nll, "kl": kl, "std": model.log_std.exp().item()})
        bar.set_postfix(loss=f"{loss:.1f}", std=f"{history[-1]['std']:.3f}")
    return history


def _phase_variance(model, X, schedule, generator, progress) -> list[dict]:
    """Fit the RBF precision network with the mean fixed (:func:`~vaemanifold.vae.calibration.fit_precision`)."""
    with torch.no_grad():
        model.latents = encode_means(model, X)
        latent_std = torch.cat([model.encode(part)[1] for part in X.split(EVAL_CHUNK)])
    model.variance_fitted.fill_(True)
    return fit_precision(
        model.variance,
        model.decoder_mean,
        model.latents,
        X,
        latent_std,
        model.config.bandwidth_scale,
        schedule.noise_std,
        schedule.variance_samples,
        schedule.variance_iterations,
        schedule.variance_tol,
        schedule.seed,
        generator,
        progress,
    )


def _progress(steps: int, description: str, enabled: bool, unit: str = "epoch"):
    return progress(range(steps), description, unit=unit, enabled=enabled)


def train(
    X: torch.Tensor,
    y: Optional[torch.Tensor] = None,
    config: Optional[VAEConfig] = None,
    schedule: Optional[TrainConfig] = None,
    device: Optional[Union[str, torch.device]] = None,
    progress: bool = True,
) -> tuple[VAE, TrainingHistory]:
    """Train a VAE in two phases (see the module docstring).

    Args:
        X: (N, D) training data (in [0, 1] when the decoder output is 'sigmoid').
        y: optional (N,) labels, kept with the model for plots.
        config: the model; default ``VAEConfig(data_dim=D)``.
        schedule: the training; default ``TrainConfig()``.
        device: default :func:`vaemanifold.device.default_device` (CUDA when present).
        progress: show progress bars with the loss (sparse lines when stderr is not a terminal).

    Returns:
        the trained model (in eval mode, on ``device``) and its :class:`TrainingHistory`.
    """
    if not isinstance(X, torch.Tensor) or X.dim() != 2 or not X.is_floating_point():
        raise ValueError(f"X must be a 2-D float tensor (N, D), got {getattr(X, 'shape', type(X).__name__)}")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    config = config or VAEConfig(data_dim=X.shape[1])
    schedule = schedule or TrainConfig()
    if config.data_dim != X.shape[1]:
        raise ValueError(f"config.data_dim={config.data_dim} but X has {X.shape[1]} columns")
    if config.output == "sigmoid" and (X.min() < 0 or X.max() > 1):
        raise ValueError("the 'sigmoid' decoder output needs data in [0, 1]; use output='identity'")
    if len(X) < config.num_centers:
        raise ValueError(f"{len(X)} samples are fewer than num_centers={config.num_centers}")
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape != (len(X),)):
        raise ValueError(f"y must be a tensor of shape ({len(X)},), got {getattr(y, 'shape', type(y).__name__)}")
    device = default_device(str(device) if device is not None else None)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(schedule.seed)
        model = VAE(config)
    model.to(device).train()
    X = X.to(device, torch.float32)
    generator = torch.Generator(device=device).manual_seed(schedule.seed)
    history = TrainingHistory(device=str(device), threads=torch.get_num_threads())

    start = time.perf_counter()
    history.mean_phase = _phase_mean(model, X, schedule, generator, progress)
    middle = time.perf_counter()
    history.variance_phase = _phase_variance(model, X, schedule, generator, progress)
    end = time.perf_counter()
    model.labels = (y if y is not None else torch.full((len(X),), -1)).to(device, torch.long)
    history.seconds = {"mean": middle - start, "variance": end - middle, "total": end - start}
    history.summary = evaluate(model, X, schedule.seed)
    return model.eval(), history
