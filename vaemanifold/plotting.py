"""Figures: the latent space over its magnification factor, curves on top, training curves.

Every drawing function takes an optional matplotlib ``ax`` (a new figure when
omitted) and an optional output ``path`` (PNG written when given), and
returns the axes. matplotlib is imported lazily (it picks the Agg backend by
itself on machines without a display).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
from stochman.curves import BasicCurve

from .manifold import DecoderManifold

CMAP = "Greys"
Extent = tuple[float, float, float, float]
CurveLike = Union[torch.Tensor, BasicCurve]
#: Line styles of curve families, in the order they are given.
CURVE_STYLES = (
    {"color": "black", "linestyle": (0, (4, 3)), "linewidth": 1.5},
    {"color": "#e6007e", "linestyle": "-", "linewidth": 2.2},
    {"color": "#ffc400", "linestyle": (0, (2, 1.5)), "linewidth": 2.4},
    {"color": "#00b3c7", "linestyle": "-.", "linewidth": 2.0},
)


def _pyplot():
    import matplotlib.pyplot as plt  # falls back to Agg by itself on machines without a display

    return plt


def _finish(ax, path: Optional[Union[str, Path]]):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(path, dpi=130, bbox_inches="tight")
    return ax


def latent_extent(points: torch.Tensor, margin: float = 0.15) -> Extent:
    """(xmin, xmax, ymin, ymax) around (N, 2) points, widened by ``margin`` of the larger side."""
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {tuple(points.shape)}")
    low, high = points.min(dim=0).values, points.max(dim=0).values
    pad = margin * (high - low).max().item()
    return (low[0].item() - pad, high[0].item() + pad, low[1].item() - pad, high[1].item() + pad)


@torch.no_grad()
def magnification_grid(
    manifold: DecoderManifold, extent: Extent, resolution: int = 200, chunk_size: int = 2048
) -> tuple[np.ndarray, float]:
    """log sqrt det M(z) on a resolution x resolution grid over ``extent``.

    One batched call of :meth:`DecoderManifold.log_magnification` (chunked by
    ``chunk_size`` points to bound memory).

    Returns:
        (resolution, resolution) array, rows along y (origin lower), and the seconds it took.
    """
    if manifold.latent_dim != 2:
        raise ValueError(f"a magnification heat map needs a 2-D latent space, got d={manifold.latent_dim}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    device = manifold.latents.device if manifold.latents is not None else torch.device("cpu")
    xs = torch.linspace(extent[0], extent[1], resolution, device=device)
    ys = torch.linspace(extent[2], extent[3], resolution, device=device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    start = time.perf_counter()
    values = manifold.log_magnification(grid, chunk_size=chunk_size)
    if values.is_cuda:
        torch.cuda.synchronize(values.device)
    seconds = time.perf_counter() - start
    return values.reshape(resolution, resolution).cpu().numpy(), seconds


def _as_polylines(curve: CurveLike, grid: int = 200) -> np.ndarray:
    """(B, N, 2) points of B curves."""
    if isinstance(curve, BasicCurve):
        t = torch.linspace(0, 1, grid, dtype=curve.begin.dtype, device=curve.begin.device)
        with torch.no_grad():
            curve = curve(t)
    if not isinstance(curve, torch.Tensor):
        raise TypeError(f"a curve must be a tensor or a stochman BasicCurve, got {type(curve).__name__}")
    points = curve.detach().cpu()
    points = points.unsqueeze(0) if points.dim() == 2 else points
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"curves must be (N, 2) or (B, N, 2) in a 2-D latent space, got {tuple(curve.shape)}")
    return points.numpy()


def plot_latent(
    manifold: DecoderManifold,
    points: Optional[torch.Tensor] = None,
    labels: Optional[torch.Tensor] = None,
    curves: Optional[Mapping[str, CurveLike]] = None,
    ax=None,
    path: Optional[Union[str, Path]] = None,
    extent: Optional[Extent] = None,
    resolution: int = 200,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
):
    """The 2-D latent space: log magnification heat map, data by class, curves.

    Args:
        manifold: a 2-D :class:`DecoderManifold`.
        points: (N, 2) latent points to scatter; default ``manifold.latents``.
        labels: (N,) integer classes colouring the points.
        curves: name -> B curves ((B, N, 2) tensor or a BasicCurve); each name
            gets one line style (:data:`CURVE_STYLES`) and a legend entry.
        ax: matplotlib axes to draw into; a new figure when None.
        path: write a PNG here.
        extent: (xmin, xmax, ymin, ymax); default: the points plus a margin.
        resolution: heat-map cells per side.
        class_names: legend names of the label values (default the values).

    Returns:
        the axes; ``ax.magnification_seconds`` holds the heat map's compute time.
    """
    plt = _pyplot()
    from matplotlib import patheffects

    points = manifold.latents if points is None else points
    if points is None:
        raise ValueError("no points to draw: pass points= or a manifold with latents")
    points = points.detach().cpu()
    extent = extent or latent_extent(points)
    values, seconds = magnification_grid(manifold, extent, resolution)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 7))
    finite = np.isfinite(values)
    low, high = np.percentile(values[finite], [1, 99.5]) if finite.any() else (0.0, 1.0)
    image = ax.imshow(
        np.ma.masked_invalid(values), extent=extent, origin="lower", cmap=CMAP, vmin=low, vmax=high,
        aspect="auto", interpolation="bilinear",
    )
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label=r"log magnification $\log\sqrt{\det M(z)}$")
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=4, c="#9ad0ff", alpha=0.6, linewidths=0)
    else:
        labels = labels.detach().cpu()
        cmap = plt.get_cmap("tab10")
        for i, value in enumerate(labels.unique().tolist()):
            mask = labels == value
            name = class_names[value] if class_names is not None else str(value)
            ax.scatter(points[mask, 0], points[mask, 1], s=6, color=cmap(i % 10), alpha=0.6, linewidths=0, label=name)
    outline = [patheffects.Stroke(linewidth=3.6, foreground="white", alpha=0.8), patheffects.Normal()]
    for (name, curve), style in zip((curves or {}).items(), CURVE_STYLES * 4):
        for k, line in enumerate(_as_polylines(curve)):
            ax.plot(line[:, 0], line[:, 1], label=name if k == 0 else None, path_effects=outline, **style)
            ax.plot(line[[0, -1], 0], line[[0, -1], 1], "o", color="white", markersize=6, markeredgecolor="black")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, markerscale=3, ncol=min(len(handles), 4))
    ax.magnification_seconds = seconds
    return _finish(ax, path)


def plot_history(history, path: Optional[Union[str, Path]] = None, ax=None):
    """Training curves of a :class:`~vaemanifold.vae.TrainingHistory`: -ELBO per epoch, phase-2 loss per update.

    The first epochs of phase 1 and the starting value of phase 2 are far
    above the rest; the y-axes show the tail and the captions the start.
    With ``ax`` given it must hold two axes (e.g. ``plt.subplots(1, 2)[1]``).
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    mean = history.mean_phase
    epochs = np.arange(1, len(mean) + 1)
    loss, nll = np.array([e["loss"] for e in mean]), np.array([e["nll"] for e in mean])
    ax[0].plot(epochs, loss, label="-ELBO")
    ax[0].plot(epochs, nll, label="-E log p(x|z)", alpha=0.7)
    _clip_start(ax[0], np.concatenate([loss, nll]), loss[0], skip=max(1, len(loss) // 20), count=len(loss))
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("nats per sample")
    ax[0].set_title("phase 1: encoder + decoder mean")
    ax[0].legend()
    variance = np.array([e["loss"] for e in history.variance_phase])
    ax[1].plot(np.arange(len(variance)), variance, marker=".")
    _clip_start(ax[1], variance, variance[0], skip=1, count=len(variance))
    ax[1].set_xlabel("update")
    ax[1].set_ylabel("-E log p(x|z), nats per sample")
    ax[1].set_title("phase 2: RBF precision network")
    for a in ax:
        a.grid(alpha=0.3)
    ax[0].figure.tight_layout()
    if path is not None:
        _finish(ax[0], path)
    return ax


def _clip_start(ax, values: np.ndarray, start: float, skip: int, count: int) -> None:
    """Limit the y-axis to the values after the first ``skip`` steps of each curve, noting the start."""
    if count <= skip + 1:
        return
    tail = values.reshape(-1, count)[:, skip:]
    low, high = tail.min(), tail.max()
    pad = 0.05 * (high - low) if high > low else 1.0
    ax.set_ylim(low - pad, high + pad)
    ax.text(0.98, 0.95, f"start {start:.4g} (off scale)", transform=ax.transAxes, ha="right", va="top", fontsize=8)


def plot_image_strips(
    rows: Mapping[str, torch.Tensor],
    path: Optional[Union[str, Path]] = None,
    titles: Optional[Sequence[str]] = None,
    side: int = 28,
):
    """Decoded image strips: for each pair a block of rows, one per curve family.

    Args:
        rows: family name -> (P, F, side * side) images in [0, 1] (F frames along each curve).
        path: optional PNG to write.
        titles: optional P block titles.

    Returns:
        the figure's first axes.
    """
    plt = _pyplot()
    names = list(rows)
    pairs, frames = rows[names[0]].shape[:2]
    fig, axes = plt.subplots(
        pairs * len(names), 1, figsize=(0.5 * frames + 2, 0.5 * pairs * len(names) + 0.5), squeeze=False
    )
    for p in range(pairs):
        for k, name in enumerate(names):
            ax = axes[p * len(names) + k, 0]
            images = rows[name][p].detach().cpu().reshape(frames, side, side)
            ax.imshow(images.permute(1, 0, 2).reshape(side, frames * side).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
            if k == 0 and titles is not None:
                ax.set_title(titles[p], fontsize=8, loc="left")
    fig.tight_layout()
    return _finish(axes[0, 0], path)
