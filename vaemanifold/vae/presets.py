"""The models the project uses, trained once and then read from a cache folder.

    model = pretrained("mnist-2d")      # trains (10-20 s on one CPU core) or loads runs/models/mnist-2d

The cache folder of a preset is ``<cache>/<name>`` with ``<cache>`` the
``cache`` argument, else the environment variable ``VAEMANIFOLD_CACHE``, else
``runs/models`` (relative to the working directory). It holds ``model.pt``,
``history.json`` and ``history.png``. A cached model whose recipe (data,
model, schedule) differs from the preset's current one is retrained, with a
warning; an unreadable one is an error (delete it or pass ``retrain=True``).

Training runs with torch's thread setting. On a 2-core machine that other
processes share, one thread is much faster than two (mnist-2d, load average
1.5: 12.8 s against 74.8 s; idle threads spin while waiting for a core), so
the command line uses ``--threads 1`` by default; from Python call
``torch.set_num_threads(1)`` first.

Presets:

* ``mnist-2d`` (the default model): digits 0-4 of the offline 5,000-image
  MNIST subset, train share (2,000 images), 2-D latent. Five digits rather
  than ten: in two dimensions ten digits merge into one blob, and the
  low-density gaps between classes, where sigma rises and geodesics part
  from straight lines, vanish; five keep those gaps, stay a multi-class
  problem for clustering, and halve the training time.
* ``mnist-8d``: all ten digits of the same subset (4,000 images), 8-D latent.
* ``fashion-2d``: Fashion-MNIST, 400 training images per class (4,000), 2-D latent.
* ``mnist-conv-{2,8,32}d`` and ``fashion-conv-{2,8,32}d``: the data of
  ``mnist-8d`` and ``fashion-2d`` with a convolutional decoder mean
  (:class:`~vaemanifold.vae.model.ConvDecoder`, SiLU) at d = 2, 8 and 32, for
  the cost of geodesics as d grows; 40 epochs, well under a minute each on one
  core. ``vaemanifold benchmark`` without ``--model`` runs the three MLP
  presets above (:data:`BENCHMARK_PRESETS`).

Time the training of a preset (nothing is written)::

    python -m vaemanifold.vae --time mnist-2d [--threads 1]
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from .. import data
from .._checks import check_choice
from .checkpoint import CheckpointError, load, save_run
from .model import VAE, VAEConfig
from .training import TrainConfig, TrainingHistory, train

logger = logging.getLogger(__name__)

#: The environment variable that moves the cache.
CACHE_ENV = "VAEMANIFOLD_CACHE"
DEFAULT_CACHE = Path("runs/models")
DEFAULT_PRESET = "mnist-2d"


@dataclass(frozen=True)
class Preset:
    """A data set, a model and a schedule; :func:`pretrained` turns it into a trained VAE."""

    name: str
    dataset: str
    latent_dim: int
    classes: Optional[Sequence[int]] = None
    per_class: Optional[int] = None
    epochs: int = 60
    model: dict = field(default_factory=dict)
    description: str = ""

    def check_data(self, root: Optional[Union[str, Path]] = None) -> None:
        """Raise FileNotFoundError, naming the preset and how to get the data, unless both splits are there.

        Commands call it for every preset they will use before any work (training one preset
        and then stopping on the next one's missing data wastes minutes).
        """
        for split in ("train", "test"):
            try:
                data.source(self.dataset, split, root)
            except FileNotFoundError as error:
                raise FileNotFoundError(f"preset {self.name!r} needs {error}") from None

    def load_data(self, root: Optional[Union[str, Path]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training data, (N, D) and (N,)."""
        return data.load(self.dataset, "train", classes=self.classes, per_class=self.per_class, root=root)

    def config(self, data_dim: int) -> VAEConfig:
        return VAEConfig(data_dim=data_dim, latent_dim=self.latent_dim, **self.model)

    def schedule(self, seed: int = 0) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, seed=seed)

    def recipe(self, data_dim: int) -> dict:
        """What determines the trained weights; a cached model with another recipe is stale."""
        classes = list(self.classes) if self.classes is not None else None
        return {
            "dataset": self.dataset,
            "classes": classes,
            "per_class": self.per_class,
            "model": self.config(data_dim).to_dict(),
            "schedule": asdict(self.schedule()),
        }


#: Latent dimensions of the convolutional presets, and their model (MLP encoder, ConvDecoder).
CONV_LATENT_DIMS = (2, 8, 32)
CONV_MODEL = {"decoder": "conv", "activation": "silu"}
#: The presets `vaemanifold benchmark` runs without --model (the MLP decoders).
BENCHMARK_PRESETS = ("mnist-2d", "mnist-8d", "fashion-2d")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "mnist-2d", "mnist", 2, classes=(0, 1, 2, 3, 4), epochs=60,
            description="MNIST digits 0-4 (offline 5k subset, 2,000 train images), 2-D latent",
        ),
        Preset(
            "mnist-8d", "mnist", 8, epochs=40,
            description="MNIST, all digits (offline 5k subset, 4,000 train images), 8-D latent",
        ),
        Preset(
            "fashion-2d", "fashion-mnist", 2, per_class=400, epochs=40,
            description="Fashion-MNIST, 400 train images per class (4,000), 2-D latent",
        ),
        *(
            Preset(
                f"mnist-conv-{d}d", "mnist", d, epochs=40, model=dict(CONV_MODEL),
                description=f"MNIST, all digits (offline 5k subset, 4,000 train images), convolutional decoder, {d}-D latent",
            )
            for d in CONV_LATENT_DIMS
        ),
        *(
            Preset(
                f"fashion-conv-{d}d", "fashion-mnist", d, per_class=400, epochs=40, model=dict(CONV_MODEL),
                description=f"Fashion-MNIST, 400 train images per class (4,000), convolutional decoder, {d}-D latent",
            )
            for d in CONV_LATENT_DIMS
        ),
    )
}


def cache_dir(name: str, cache: Optional[Union[str, Path]] = None) -> Path:
    """The folder of preset ``name``: ``cache`` or $VAEMANIFOLD_CACHE or runs/models, then ``name``."""
    check_choice("preset", name, PRESETS)
    root = cache if cache is not None else os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    return Path(root).expanduser() / name


def train_preset(
    name: str,
    data_root: Optional[Union[str, Path]] = None,
    device: Optional[Union[str, torch.device]] = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[VAE, TrainingHistory]:
    """Train preset ``name`` from scratch (nothing is written); metadata says how."""
    check_choice("preset", name, PRESETS)
    preset = PRESETS[name]
    X, y = preset.load_data(data_root)
    config, schedule = preset.config(X.shape[1]), preset.schedule(seed)
    model, history = train(X, y, config, schedule, device=device, progress=progress)
    model.metadata = {
        "preset": name,
        "recipe": preset.recipe(X.shape[1]),
        "data_source": data.source(preset.dataset, "train", data_root),
        "seconds": history.seconds,
        "summary": history.summary,
        "device": history.device,
        "threads": history.threads,
    }
    return model, history


def pretrained(
    name: str = DEFAULT_PRESET,
    cache: Optional[Union[str, Path]] = None,
    retrain: bool = False,
    data_root: Optional[Union[str, Path]] = None,
    device: Optional[Union[str, torch.device]] = None,
    progress: bool = True,
) -> VAE:
    """Preset ``name`` trained, from its cache folder when it is there (see the module docstring).

    ``model.metadata["loaded_from"]`` is the file read, or None when the model
    was trained by this call (then ``model.metadata["seconds"]`` has the times).
    """
    folder = cache_dir(name, cache)
    file = folder / "model.pt"
    if file.is_file() and not retrain:
        try:
            model = load(file, device)
        except CheckpointError as error:
            raise CheckpointError(f"cached preset {name!r}: {error}; delete {folder} or pass retrain=True") from None
        data_dim = model.config.data_dim
        if model.metadata.get("recipe") == PRESETS[name].recipe(data_dim):
            logger.info("preset %s: loaded %s", name, file)
            model.metadata["loaded_from"] = str(file)
            return model
        warnings.warn(f"cached preset {name!r} at {file} was trained with another recipe; retraining", stacklevel=2)
    logger.info("preset %s: training (%s)", name, PRESETS[name].description)
    model, history = train_preset(name, data_root, device, progress)
    save_run(model, history, folder)
    logger.info("preset %s: trained in %.1f s, saved to %s", name, history.seconds["total"], file)
    model.metadata["loaded_from"] = None
    return model
