"""Post-hoc variance calibration: the RBF precision network fitted to any decoder mean.

Arvanitidis, Hansen & Hauberg (2017) fit the decoder's variance after its
mean, with the mean fixed: RBF centres by k-means on the latent codes of the
training data, bandwidths from the clusters' spread, and the weights W >= 0
by maximising the Gaussian likelihood of the residuals r = x - mu(z). Per
output dimension the objective is

    (1/2) sum_n [log beta_d(z_n) - beta_d(z_n) r_nd^2],   beta_d(z) = sum_k W_dk v_k(z) + zeta,

concave in W; the minorise-maximise (EM) update
W_dk <- W_dk (sum_n v_nk / beta_nd) / (sum_n v_nk r_nd^2) raises it at every
step with no learning rate. ``noise_std ** 2`` is added to every squared
residual (the data's own noise), which caps the precision near the data;
far from every centre beta -> zeta and sigma -> zeta^(-1/2).

:func:`calibrate_std` does this for any decoder mean; our own VAE training
(:mod:`vaemanifold.vae.training`, phase 2) calls :func:`fit_precision`, the
same routine, on its model.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from ..progress import progress as progress_bar
from .model import LOG_2PI
from .rbf import RBFPrecision

#: Rows per decoder pass.
CHUNK = 4096
#: Smallest RBF weight (keeps log W finite) and smallest denominator of the updates.
TINY = 1e-30


@torch.no_grad()
def fit_precision(
    rbf: RBFPrecision,
    mean: Callable[[torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    data: torch.Tensor,
    latent_std: Optional[torch.Tensor] = None,
    bandwidth_scale: float = 1.0,
    noise_std: float = 0.02,
    samples: int = 4,
    iterations: int = 200,
    tol: float = 1e-5,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    progress: bool = True,
) -> list[dict]:
    """Fit ``rbf`` in place: centres, bandwidths, then W by minorise-maximise updates.

    Args:
        rbf: the network to fit (its centres, bandwidths and weights are overwritten).
        mean: the fixed decoder mean, (..., d) -> (..., D).
        latents: (N, d) codes of the training data (posterior means).
        data: (N, D) the training data.
        latent_std: optional (N, d) posterior standard deviations: the
            residuals are then taken at ``samples`` draws z ~ N(latents, latent_std^2)
            per point (the ELBO's expectation); without it, at the codes themselves.
        bandwidth_scale: a in lambda_k = 0.5 (a * spread_k)^-2.
        noise_std: the data's noise, in data units.
        samples: posterior draws per point (with ``latent_std``).
        iterations, tol: at most this many updates; stop when one changes the loss by less than ``tol`` (relative).
        seed: seed of k-means and, without ``generator``, of the draws.
        generator: the draws' generator (our training passes its own, to keep its stream).
        progress: a progress bar over the updates.

    Returns:
        per update, ``{"loss": -E log p(x|z) per point}``.
    """
    assignment = rbf.fit_centres(latents, bandwidth_scale, seed)
    if generator is None:
        generator = torch.Generator(device=latents.device).manual_seed(seed)
    draws = samples if latent_std is not None else 1
    squared, activations = [], []  # (N S, D), (N S, K): the Monte Carlo objective, drawn once
    for _ in range(draws):
        for first in range(0, len(latents), CHUNK):
            z = latents[first : first + CHUNK]
            if latent_std is not None:
                std = latent_std[first : first + CHUNK]
                z = z + std * torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
            squared.append((data[first : first + CHUNK] - mean(z)) ** 2 + noise_std**2)
            activations.append(rbf.activations(z))
    squared, activations = torch.cat(squared), torch.cat(activations)
    rbf.init_weights(squared[: len(latents)], assignment)
    denominator = (activations.T @ squared).T  # (D, K): sum_n v_nk r_nd^2, fixed
    history, previous = [], math.inf
    bar = progress_bar(range(iterations), "variance calibration", unit="update", enabled=progress)
    for _ in bar:
        weights = rbf.log_weights.exp()
        precision = activations @ weights.T + rbf.zeta  # (N S, D)
        loss = 0.5 * ((precision * squared - precision.log()).sum() / len(precision) + data.shape[1] * LOG_2PI)
        history.append({"loss": loss.item()})
        bar.set_postfix(loss=f"{history[-1]['loss']:.1f}")
        if abs(previous - history[-1]["loss"]) <= tol * abs(history[-1]["loss"]):
            break
        previous = history[-1]["loss"]
        numerator = (activations.T @ precision.reciprocal()).T  # (D, K): sum_n v_nk / beta_nd
        rbf.log_weights.copy_((weights * numerator / denominator.clamp_min(TINY)).clamp_min(TINY).log())
    return history


def _check(mean: Callable, latents: torch.Tensor, data: torch.Tensor, latent_std: Optional[torch.Tensor]) -> int:
    """Validate the inputs of :func:`calibrate_std`; returns D."""
    for name, x in (("latents", latents), ("data", data)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a 2-D float tensor, got {getattr(x, 'shape', type(x).__name__)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if len(latents) != len(data):
        raise ValueError(f"latents has {len(latents)} rows but data has {len(data)}: one code per data point")
    if latent_std is not None:
        if latent_std.shape != latents.shape:
            raise ValueError(f"latent_std {tuple(latent_std.shape)} must have the shape of latents {tuple(latents.shape)}")
        if not bool((latent_std > 0).all()) or not bool(torch.isfinite(latent_std).all()):
            raise ValueError("latent_std must be positive and finite")
    with torch.no_grad():
        probe = mean(latents[:2])
    if not isinstance(probe, torch.Tensor) or probe.shape != (len(latents[:2]), data.shape[1]):
        raise ValueError(
            f"mean maps (2, {latents.shape[1]}) codes to {tuple(getattr(probe, 'shape', ()))}, "
            f"expected (2, {data.shape[1]}) like the data"
        )
    return data.shape[1]


def calibrate_std(
    mean: Callable[[torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    data: torch.Tensor,
    latent_std: Optional[torch.Tensor] = None,
    num_centers: int = 64,
    bandwidth_scale: float = 1.0,
    zeta: float = 1e-2,
    noise_std: float = 0.02,
    samples: int = 4,
    iterations: int = 200,
    tol: float = 1e-5,
    seed: int = 0,
    progress: bool = True,
) -> RBFPrecision:
    """A calibrated std map for a pretrained decoder mean, post hoc (Arvanitidis et al. 2017).

    ``vm.DecoderManifold(mean, calibrate_std(mean, latents, data))`` is then
    the expected pull-back metric, with sigma small near the data and rising
    to ``zeta ** -0.5`` away from it.

    Args:
        mean: the decoder mean, any callable or ``nn.Module`` (..., d) -> (..., D); it is not changed.
        latents: (N, d) codes of the training data, e.g. the encoder's posterior means.
        data: (N, D) the data they encode, in the decoder's output space.
        latent_std: optional (N, d) posterior standard deviations (see :func:`fit_precision`).
        num_centers: K RBF centres (k-means on ``latents``; N >= K).
        bandwidth_scale: a in lambda_k = 0.5 (a * spread_k)^-2; larger a, wider RBFs.
        zeta: the precision floor; far from the data sigma -> zeta^(-1/2).
        noise_std: the data's noise in data units (0.02: five grey levels of 8-bit images).
        samples, iterations, tol, seed, progress: as for :func:`fit_precision`.

    Returns:
        the fitted :class:`~vaemanifold.vae.rbf.RBFPrecision` on the device and in the dtype of ``latents``.

    Raises:
        ValueError: shapes that do not match (named), non-finite inputs, N < num_centers.
    """
    D = _check(mean, latents, data, latent_std)
    if len(latents) < num_centers:
        raise ValueError(f"{len(latents)} codes are fewer than num_centers={num_centers}")
    rbf = RBFPrecision(latents.shape[1], D, num_centers, zeta).to(latents.device, latents.dtype)
    data = data.to(latents.device, latents.dtype)
    fit_precision(rbf, mean, latents, data, latent_std, bandwidth_scale, noise_std, samples, iterations, tol, seed,
                  progress=progress)
    return rbf
