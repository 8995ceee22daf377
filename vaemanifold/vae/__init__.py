"""VAEs whose decoder variance is calibrated for latent-space geometry.

    from vaemanifold.vae import VAEConfig, TrainConfig, train, pretrained
    model, history = train(X, y, VAEConfig(data_dim=784, latent_dim=2))
    model.save("runs/my-model")                 # -> runs/my-model/model.pt
    M = model.manifold()                        # DecoderManifold(mu, sigma, latents)
    model = pretrained("mnist-2d")              # trained once, then read from the cache
    std = calibrate_std(mean, codes, X)         # a calibrated sigma for any pretrained decoder mean
"""

from .calibration import calibrate_std
from .checkpoint import CheckpointError, load, save
from .model import VAE, VAEConfig
from .presets import PRESETS, cache_dir, pretrained
from .rbf import RBFPrecision
from .training import TrainConfig, TrainingHistory, evaluate, sigma_ratio, train

__all__ = [
    "PRESETS",
    "VAE",
    "CheckpointError",
    "RBFPrecision",
    "TrainConfig",
    "TrainingHistory",
    "VAEConfig",
    "cache_dir",
    "calibrate_std",
    "evaluate",
    "load",
    "pretrained",
    "save",
    "sigma_ratio",
    "train",
]
