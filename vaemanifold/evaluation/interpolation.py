"""Interpolation quality: straight lines against geodesics, judged in data space.

For P pairs of held-out images (encoded to their posterior means; both of
one class, or of two classes) every method (the straight line and each geodesic solver) gives a latent
curve. Each curve is cut into F frames at *equal metric arc length* (the
cumulative data-space length of f = (mu, sigma) on a dense grid, inverted by
linear interpolation), and the frames are decoded to mean images mu(z).

* Class crossings: a pixel classifier labels every frame. A curve's *extra
  classes* are the labels its frames get other than its two end classes
  (one class for a same-class pair); it *leaves its classes* when there is at
  least one. Only pairs whose end frames are classified as their end classes
  are counted (otherwise the endpoints themselves decide the outcome).
* Smoothness: the coefficient of variation (std / mean) of the F - 1 distances
  ||mu(z_{j+1}) - mu(z_j)|| between consecutive frames; 0 means evenly paced
  images.

A solver's statistics use the pairs it converged on (counted), and the
straight line is scored on exactly those pairs beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np
import torch
from stochman.curves import BasicCurve

from ..geodesic import connecting_geodesic
from ..manifold import DecoderManifold
from .classifier import PixelClassifier

#: Dense points per curve for the arc-length reparametrisation.
ARC_GRID = 1024
#: Curves per chunk when the dense grid is embedded (bounds memory: chunk * ARC_GRID * D numbers).
CHUNK = 8


def same_class_pairs(labels: torch.Tensor, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` seeded pairs of distinct samples of one class, classes taken in turn.

    Returns:
        (first, second) index tensors, (count,) each.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    y = labels.cpu().numpy()
    classes, sizes = np.unique(y, return_counts=True)
    classes = classes[sizes >= 2]
    if not len(classes):
        raise ValueError("no class has two samples: cannot draw same-class pairs")
    rng = np.random.default_rng(seed)
    first, second = [], []
    for p in range(count):
        i, j = rng.choice(np.flatnonzero(y == classes[p % len(classes)]), size=2, replace=False)
        first.append(i)
        second.append(j)
    return torch.as_tensor(np.array(first)), torch.as_tensor(np.array(second))


def cross_class_pairs(labels: torch.Tensor, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` seeded pairs of samples of two different classes, the unordered class pairs taken in turn.

    Returns:
        (first, second) index tensors, (count,) each; ``labels[first] < labels[second]``.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    y = labels.cpu().numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("the labels hold fewer than two classes: cannot draw cross-class pairs")
    class_pairs = [(a, b) for k, a in enumerate(classes) for b in classes[k + 1 :]]
    rng = np.random.default_rng(seed)
    first, second = [], []
    for p in range(count):
        a, b = class_pairs[p % len(class_pairs)]
        first.append(rng.choice(np.flatnonzero(y == a)))
        second.append(rng.choice(np.flatnonzero(y == b)))
    return torch.as_tensor(np.array(first)), torch.as_tensor(np.array(second))


def end_classes(labels: np.ndarray) -> np.ndarray:
    """The classes of each pair's two ends: (P,) one class per pair (same-class pairs) or (P, 2) -> (P, 2)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return np.stack([labels, labels], axis=1)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise ValueError(f"labels must be (P,) or (P, 2), got shape {labels.shape}")
    return labels


def equal_arc_frames(
    manifold: DecoderManifold, curve: BasicCurve, frames: int, grid: int = ARC_GRID
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of B curves at ``frames`` equal steps of metric arc length.

    The curve is sampled at ``grid`` equally spaced t, its data-space polyline
    (the metric length) accumulated, and the arc-length fractions j / (frames - 1)
    located on it by linear interpolation between the dense points.

    Returns:
        (B, frames, d) points (first and last are the curve's ends) and the (B,) lengths.
    """
    if frames < 2 or grid < 2:
        raise ValueError(f"frames and grid must be >= 2, got {frames} and {grid}")
    dtype, device = curve.begin.dtype, curve.begin.device
    t = torch.linspace(0, 1, grid, dtype=dtype, device=device)
    fractions = torch.linspace(0, 1, frames, dtype=dtype, device=device)
    out, lengths = [], []
    with torch.no_grad():
        dense = curve(t).reshape(len(curve), grid, -1)
        for part in dense.split(CHUNK):
            steps = manifold.embed(part).diff(dim=1).norm(dim=-1)  # (b, grid - 1)
            arc = torch.cat([steps.new_zeros(len(part), 1), steps.cumsum(dim=1)], dim=1)
            target = fractions * arc[:, -1:]
            upper = torch.searchsorted(arc, target.contiguous()).clamp(1, grid - 1)
            lo, hi = arc.gather(1, upper - 1), arc.gather(1, upper)
            weight = ((target - lo) / (hi - lo).clamp_min(torch.finfo(dtype).tiny)).clamp(0, 1).unsqueeze(-1)
            a = part.gather(1, (upper - 1).unsqueeze(-1).expand(-1, -1, part.shape[-1]))
            b = part.gather(1, upper.unsqueeze(-1).expand(-1, -1, part.shape[-1]))
            out.append(a + weight * (b - a))
            lengths.append(arc[:, -1])
    return torch.cat(out), torch.cat(lengths)


def step_variation(images: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation of consecutive-frame distances: (B, F, D) -> (B,)."""
    if images.dim() != 3 or images.shape[1] < 3:
        raise ValueError(f"images must be (B, F, D) with F >= 3, got {tuple(images.shape)}")
    steps = images.diff(dim=1).norm(dim=-1)
    return steps.std(dim=1) / steps.mean(dim=1).clamp_min(torch.finfo(steps.dtype).tiny)


def off_class_frames(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which frames are labelled neither of their pair's end classes: (B, F), labels (B,) or (B, 2) -> (B, F) bool."""
    ends = end_classes(labels)
    predicted = np.asarray(predicted)
    return (predicted != ends[:, :1]) & (predicted != ends[:, 1:])


def leaves_class(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether any frame's label is neither end class: (B, F), labels (B,) or (B, 2) -> (B,) bool."""
    return off_class_frames(predicted, labels).any(axis=1)


def extra_classes(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How many distinct classes other than the end classes the frames visit: (B, F), labels (B,) or (B, 2) -> (B,) int."""
    off = off_class_frames(predicted, labels)
    return np.array([len(set(row[mask].tolist())) for row, mask in zip(np.asarray(predicted), off)], dtype=int)


@dataclass
class MethodFrames:
    """One method's curves for all pairs, cut at equal arc length and decoded.

    Attributes:
        method: name ('linear' or a solver name); options: the solver options.
        points: (P, F, d) frames in latent space; images: (P, F, D) decoded means.
        length: (P,) metric lengths; converged: (P,) bool; reasons: per pair.
        predicted: (P, F) classifier labels of the frames.
        leaves: (P,) whether some frame is labelled neither end class; off_class: (P,) share of such frames;
        extra: (P,) how many distinct such classes the frames visit.
        variation: (P,) coefficient of variation of the frame steps.
        seconds: solver wall time, all batches.
        curves: the solver's curves, one object per batch of pairs.
    """

    method: str
    options: dict
    points: torch.Tensor
    images: torch.Tensor
    length: torch.Tensor
    converged: torch.Tensor
    reasons: list
    predicted: np.ndarray
    leaves: np.ndarray
    off_class: np.ndarray
    extra: np.ndarray
    variation: torch.Tensor
    seconds: float
    curves: list = field(repr=False)


def run_method(
    manifold: DecoderManifold,
    decode: Callable[[torch.Tensor], torch.Tensor],
    classifier: PixelClassifier,
    z0: torch.Tensor,
    z1: torch.Tensor,
    labels: np.ndarray,
    method: str,
    options: Mapping,
    frames: int,
    batch: int = 20,
) -> MethodFrames:
    """Connect all pairs with one method, ``batch`` pairs per solver call, then cut, decode and score the curves.

    ``labels`` are the pairs' end classes: (P,) for same-class pairs, (P, 2) otherwise.
    Batches bound the solver's problem size: an optimiser's convergence check
    then waits for ``batch`` pairs, not all P.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    points, length, converged, reasons, curves, seconds = [], [], [], [], [], 0.0
    for lo in range(0, len(z0), batch):
        result = connecting_geodesic(manifold, z0[lo : lo + batch], z1[lo : lo + batch], method=method, **options)
        p, n = equal_arc_frames(manifold, result.curve, frames)
        points.append(p)
        length.append(n)
        converged.append(result.converged.cpu())
        reasons += result.reasons
        curves.append(result.curve)
        seconds += result.seconds
    points_t = torch.cat(points)
    with torch.no_grad():
        images = decode(points_t)
    predicted = classifier.predict(images)
    off = off_class_frames(predicted, labels)
    return MethodFrames(
        method=method, options=dict(options), points=points_t, images=images, length=torch.cat(length),
        converged=torch.cat(converged), reasons=reasons, predicted=predicted, leaves=off.any(axis=1),
        off_class=off.mean(axis=1), extra=extra_classes(predicted, labels), variation=step_variation(images).cpu(), seconds=seconds, curves=curves,
    )


def summarise(runs: list[MethodFrames], labels: np.ndarray) -> dict:
    """Per method: counts, crossing rates and extra classes (with the line's on the same pairs), smoothness,
    lengths, time.

    ``runs[0]`` must be the straight line; ``labels`` are the end classes, (P,) or (P, 2). A pair counts
    when its end frames are classified as its end classes (``eligible``) and the method converged.
    """
    line = runs[0]
    if line.method != "linear":
        raise ValueError(f"the first run must be the straight line, got {line.method!r}")
    ends = end_classes(labels)
    eligible = (line.predicted[:, 0] == ends[:, 0]) & (line.predicted[:, -1] == ends[:, 1])
    out = {}
    for run in runs:
        used = eligible & run.converged.numpy()
        n = int(used.sum())
        out[run.method] = {
            "pairs": len(labels),
            "converged": int(run.converged.sum()),
            "counted": n,
            "leaves_class": float(run.leaves[used].mean()) if n else None,
            "leaves_class_converged_or_not": float(run.leaves[eligible].mean()) if eligible.any() else None,
            "line_leaves_class_same_pairs": float(line.leaves[used].mean()) if n else None,
            "off_class_frames": float(run.off_class[used].mean()) if n else None,
            "extra_classes_mean": float(run.extra[used].mean()) if n else None,
            "line_extra_classes_mean_same_pairs": float(line.extra[used].mean()) if n else None,
            "fewer_extra_classes_than_line": int((run.extra < line.extra)[used].sum()),
            "more_extra_classes_than_line": int((run.extra > line.extra)[used].sum()),
            "step_cv_median": float(run.variation[used].median()) if n else None,
            "line_step_cv_median_same_pairs": float(line.variation[used].median()) if n else None,
            "length_over_line_median": float((run.length / line.length)[used].median()) if n else None,
            "seconds_per_pair": run.seconds / len(labels),
            "options": run.options,
            "failure_example": next((r for r in run.reasons if r), None),
        }
    return {"eligible_pairs": int(eligible.sum()), "methods": out}


def strip_figure(
    runs: list[MethodFrames],
    images: list[torch.Tensor],
    pairs: list[int],
    labels: np.ndarray,
    path,
    title: Optional[str] = None,
    side: int = 28,
):
    """One PNG: per shown pair a mosaic whose rows are the methods and whose columns are the decoded frames.

    Args:
        runs: the methods (their ``leaves`` and ``converged`` annotate the rows; leaving rows in red).
        images: per method, (P, F, D) frames to draw (e.g. fewer frames than were scored).
        pairs: which pairs to show.
        side: images are side x side.
    """
    import matplotlib.pyplot as plt

    frames, methods = images[0].shape[1], len(runs)
    fig, axes = plt.subplots(
        len(pairs), 1, figsize=(0.62 * frames + 2.6, (0.62 * methods + 0.45) * len(pairs) + 0.5), squeeze=False
    )
    ends = end_classes(labels)
    for ax, p in zip(axes[:, 0], pairs):
        rows = [images[k][p].detach().cpu().reshape(frames, side, side).permute(1, 0, 2).reshape(side, frames * side)
                for k in range(methods)]
        ax.imshow(torch.cat(rows).numpy(), cmap="gray", vmin=0, vmax=1, aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([side * (k + 0.5) for k in range(methods)])
        names = [run.method + ("" if bool(run.converged[p]) else " (not conv.)") + (" LEAVES" if run.leaves[p] else "")
                 for run in runs]
        ax.set_yticklabels(names, fontsize=8)
        for tick, run in zip(ax.get_yticklabels(), runs):
            tick.set_color("#c00000" if run.leaves[p] else "black")
        a, b = ends[p]
        ax.set_title(f"pair {p} (class {a})" if a == b else f"pair {p} (classes {a} -> {b})", fontsize=9, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_interpolation(
    manifold: DecoderManifold,
    decode: Callable[[torch.Tensor], torch.Tensor],
    classifier: PixelClassifier,
    z0: torch.Tensor,
    z1: torch.Tensor,
    labels: np.ndarray,
    methods: Mapping[str, Mapping],
    frames: int,
    batch: int = 20,
    log: Optional[Callable[[str], None]] = None,
) -> list[MethodFrames]:
    """Every method of ``methods`` (name -> solver options; 'linear' is put first) on all pairs (see :func:`run_method`)."""
    names = ["linear"] + [m for m in methods if m != "linear"]
    runs = []
    for name in names:
        start = time.perf_counter()
        run = run_method(manifold, decode, classifier, z0, z1, labels, name, methods.get(name, {}), frames, batch)
        runs.append(run)
        if log:
            log(
                f"  {name:<8} converged {int(run.converged.sum())}/{len(labels)}, leaves its classes {run.leaves.mean():.1%}, "
                f"extra classes {run.extra.mean():.2f} a pair, "
                f"{time.perf_counter() - start:.0f} s"
            )
    return runs
