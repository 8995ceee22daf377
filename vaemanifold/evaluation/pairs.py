"""Endpoint pairs for benchmarks on trained models: seeded, same-class and cross-class.

Held-out images are encoded to their posterior means; :func:`draw_pairs`
picks pairs of those codes, half of them (rounded up) within one class and
the rest across two classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PairIndex:
    """Indices into a labelled set: pair b joins sample first[b] to second[b].

    Attributes:
        first, second: (P,) int64 indices.
        same_class: (P,) bool, whether the two samples share a label.
    """

    first: torch.Tensor
    second: torch.Tensor
    same_class: torch.Tensor

    def to_dict(self, labels: torch.Tensor) -> dict:
        """JSON-safe description: indices, labels of both ends, same-class flags."""
        return {
            "first": self.first.tolist(),
            "second": self.second.tolist(),
            "first_label": labels[self.first].tolist(),
            "second_label": labels[self.second].tolist(),
            "same_class": self.same_class.tolist(),
        }


def draw_pairs(labels: torch.Tensor, count: int, seed: int = 0) -> PairIndex:
    """``count`` seeded pairs of distinct samples: ceil(count / 2) same-class, the rest cross-class.

    A same-class pair picks a class (uniformly among those with at least two
    samples) and two distinct samples of it; a cross-class pair picks two
    samples with different labels. Pairs are drawn independently (a pair may
    repeat only by chance).

    Args:
        labels: (N,) integer labels.
        count: P >= 1.

    Raises:
        ValueError: when no class has two samples (same-class pairs) or all
            samples share one label (cross-class pairs).
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be a 1-D integer tensor, got {getattr(labels, 'shape', type(labels).__name__)}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    y = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    n_same = (count + 1) // 2
    classes, sizes = np.unique(y, return_counts=True)
    eligible = classes[sizes >= 2]
    if n_same and not len(eligible):
        raise ValueError("no class has two samples: cannot draw same-class pairs")
    if count - n_same and len(classes) < 2:
        raise ValueError("all samples share one label: cannot draw cross-class pairs")
    first, second = [], []
    for _ in range(n_same):
        members = np.flatnonzero(y == rng.choice(eligible))
        i, j = rng.choice(members, size=2, replace=False)
        first.append(i)
        second.append(j)
    for _ in range(count - n_same):
        i = rng.integers(len(y))
        j = rng.choice(np.flatnonzero(y != y[i]))
        first.append(i)
        second.append(j)
    first_t = torch.as_tensor(np.array(first), dtype=torch.long)
    second_t = torch.as_tensor(np.array(second), dtype=torch.long)
    return PairIndex(first_t, second_t, labels.cpu()[first_t] == labels.cpu()[second_t])
