"""Benchmark problems: a decoder, B endpoint pairs, and what the solvers need besides.

* :func:`analytic_problems` -- the issue-2 table: the sphere chart (truth: the
  great-circle distance) and a random tanh-MLP decoder with d = 2 and d = 8.
* :func:`model_problem` -- a trained VAE with pairs of held-out images,
  encoded to their posterior means (see :mod:`vaemanifold.evaluation.pairs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from .. import analytic, data
from ..manifold import DecoderManifold
from .pairs import draw_pairs

#: Chart grid of the sphere problem's graph points, theta x phi nodes.
SPHERE_GRID = (40, 90)
#: theta range of the sphere grid (away from the poles, where the chart's metric is singular).
SPHERE_THETA = (0.3, math.pi - 0.3)
#: phi range of the sphere grid, covering sphere_pairs' endpoints (``abs(phi) < 4``).
SPHERE_PHI = (-4.5, 4.5)
#: Endpoints and graph points of the random-MLP problems are drawn from N(0, MLP_SCALE^2 I).
MLP_SCALE = 2.0
#: Graph points of the random-MLP problems, per latent dimension.
MLP_GRAPH_POINTS = {2: 2000, 8: 4000}


@dataclass
class Problem:
    """One decoder and the B endpoint pairs every solver connects.

    Attributes:
        name: short identifier (a table heading, a JSON key).
        manifold: the latent space.
        z0, z1: (B, d) endpoints.
        description: one line on the decoder and how the pairs were drawn.
        truth: optional (B,) true distances (analytic decoders only).
        solver_options: options added to every run of a solver, by solver
            name (e.g. the graph solver's ``points``); a run's own budget may
            not repeat them.
        info: JSON-safe details on the pairs (labels, seed, ...).
    """

    name: str
    manifold: DecoderManifold
    z0: torch.Tensor
    z1: torch.Tensor
    description: str
    truth: Optional[torch.Tensor] = None
    solver_options: dict[str, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.z0.dim() != 2 or self.z0.shape != self.z1.shape:
            raise ValueError(f"z0 and z1 must both be (B, d), got {tuple(self.z0.shape)} and {tuple(self.z1.shape)}")
        if self.z0.shape[1] != self.manifold.latent_dim:
            raise ValueError(
                f"pairs have dimension {self.z0.shape[1]}, the manifold {self.manifold.latent_dim}"
            )
        if self.truth is not None and self.truth.shape != (len(self.z0),):
            raise ValueError(f"truth must be ({len(self.z0)},), got {tuple(self.truth.shape)}")

    @property
    def pairs(self) -> int:
        return len(self.z0)


def sphere_grid(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The sphere problem's graph points: a SPHERE_GRID chart grid, (N, 2)."""
    theta = torch.linspace(*SPHERE_THETA, SPHERE_GRID[0], dtype=dtype)
    phi = torch.linspace(*SPHERE_PHI, SPHERE_GRID[1], dtype=dtype)
    return torch.cartesian_prod(theta, phi)


def sphere_problem(pairs: int = 16, seed: int = 0) -> Problem:
    """``pairs`` :func:`~vaemanifold.analytic.sphere_pairs` on the unit-sphere chart, truth = great circles."""
    z0, z1 = analytic.sphere_pairs(pairs, seed=seed)
    points = sphere_grid()
    return Problem(
        name="sphere",
        manifold=analytic.sphere_manifold(),
        z0=z0,
        z1=z1,
        description=(
            f"unit sphere, spherical chart; {pairs} sphere_pairs(seed={seed}); truth = great-circle distance; "
            f"graph points: a {SPHERE_GRID[0]} x {SPHERE_GRID[1]} chart grid, theta in "
            f"[{SPHERE_THETA[0]:.2f}, {SPHERE_THETA[1]:.2f}], phi in [{SPHERE_PHI[0]}, {SPHERE_PHI[1]}]"
        ),
        truth=analytic.great_circle_distance(z0, z1),
        solver_options={"graph": {"points": points}},
        info={"pairs": "analytic.sphere_pairs", "seed": seed, "graph_points": f"chart grid {SPHERE_GRID}"},
    )


def mlp_problem(latent_dim: int, pairs: int = 16, seed: int = 0, graph_points: Optional[int] = None) -> Problem:
    """A random tanh-MLP decoder (float64) with endpoints and graph points from N(0, MLP_SCALE^2 I)."""
    if graph_points is None:
        graph_points = MLP_GRAPH_POINTS.get(latent_dim, 500 * latent_dim)
    g = torch.Generator().manual_seed(seed)

    def draw(n: int) -> torch.Tensor:
        return MLP_SCALE * torch.randn(n, latent_dim, generator=g, dtype=torch.float64)

    z0, z1, points = draw(pairs), draw(pairs), draw(graph_points)
    return Problem(
        name=f"mlp-d{latent_dim}",
        manifold=analytic.random_mlp_manifold(latent_dim, seed=seed, dtype=torch.float64),
        z0=z0,
        z1=z1,
        description=(
            f"random tanh MLP decoder (d={latent_dim}, D=16+16, seed={seed}); {pairs} pairs from "
            f"N(0, {MLP_SCALE:g}^2 I); graph points: {graph_points} random draws from the same normal"
        ),
        solver_options={"graph": {"points": points}},
        info={"pairs": f"N(0, {MLP_SCALE:g}^2 I)", "seed": seed, "graph_points": f"{graph_points} N(0, {MLP_SCALE:g}^2 I) draws"},
    )


def analytic_problems(pairs: int = 16, seed: int = 0, latent_dims: tuple[int, ...] = (2, 8)) -> list[Problem]:
    """The issue-2 comparison: the sphere chart and random MLP decoders of the given latent dimensions."""
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    return [sphere_problem(pairs, seed)] + [mlp_problem(d, pairs, seed) for d in latent_dims]


def training_data(metadata: dict) -> dict:
    """How a model's training data was chosen, from its checkpoint metadata.

    Presets keep it under ``metadata["recipe"]``, ``vaemanifold train`` at the
    top level. The seed of the train/test split (it matters where the source
    has no official split, e.g. the 5k MNIST subset) is the training
    schedule's seed: both write the seed they passed to :func:`vaemanifold.data.load`
    there (presets: 0).

    Returns:
        {"dataset", "classes", "split_seed"}.

    Raises:
        ValueError: the metadata does not say which data set the model was trained on.
    """
    info = metadata.get("recipe", metadata)
    if info.get("dataset") not in data.DATASETS:
        raise ValueError(
            f"the model's metadata names no known training data set (dataset={info.get('dataset')!r}); "
            "cannot draw held-out pairs"
        )
    return {
        "dataset": info["dataset"],
        "classes": info.get("classes"),
        "split_seed": int((info.get("schedule") or {}).get("seed", 0)),
    }


def model_problem(model, name: str, pairs: int, seed: int = 0, root: Optional[str] = None) -> Problem:
    """A trained VAE and ``pairs`` held-out pairs (half same-class, seeded), at their posterior means.

    Args:
        model: a :class:`vaemanifold.vae.VAE` with a fitted variance network.
        name: the problem's name (e.g. the preset).
        pairs: P.
        seed: seed of the pair choice.
        root: optional torchvision-layout data folder (as for training).

    The held-out images are the test split of the model's training data set
    and classes (:func:`training_data`). The graph solver uses the model's
    training codes (``manifold.latents``).
    """
    source = training_data(model.metadata)
    X, y = data.load(source["dataset"], "test", classes=source["classes"], root=root, seed=source["split_seed"])
    index = draw_pairs(y, pairs, seed)
    with torch.no_grad():
        z0 = model.encode(X[index.first].to(model.device))[0]
        z1 = model.encode(X[index.second].to(model.device))[0]
    manifold = model.manifold()
    codes = 0 if manifold.latents is None else len(manifold.latents)
    classes = "all classes" if source["classes"] is None else f"classes {source['classes']}"
    return Problem(
        name=name,
        manifold=manifold,
        z0=z0,
        z1=z1,
        description=(
            f"trained VAE {name} (d={manifold.latent_dim}); {pairs} pairs of held-out {source['dataset']} test "
            f"images ({classes}; {int(index.same_class.sum())} same-class, {int((~index.same_class).sum())} "
            f"cross-class; seed {seed}) at their posterior means; graph points: the {codes} training codes"
        ),
        info={**source, "seed": seed, "test_images": len(y), **index.to_dict(y)},
    )
