"""Geodesic clustering in a VAE's latent space (Arvanitidis et al. 2017, "Latent space oddity", Sec. 5).

For each digit set ({0,1,2}, {3,4,7}, {5,6,9}) a 2-D VAE with the RBF variance
network is trained on the images of those digits; random subsets of the
training codes (``subset_per_class`` per digit) are clustered into as many
clusters as digits by

* k-medoids on geodesic distances (the Riemannian method),
* k-medoids and k-means on Euclidean latent distances (the baselines),

and scored against the digit labels by the F-measure and NMI, as mean and
standard deviation over ``subsets`` subsets.

Geodesic distances are, first, shortest paths on the graph solver's k-NN graph
(:class:`~vaemanifold.solvers.graph.GraphSolver`) over *all* training codes of
the set, whose edges are straight segments measured by the metric: the subset
points are graph nodes, so one Dijkstra run from each subset point gives its
whole row. That is the graph solver's own path length; :func:`validate_distances`
compares it on sampled pairs with the dense-measured curves of the graph
solver and of the graph solver refined by the spline solver
(``vaemanifold.distance``), and the comparison is part of the command's output.

Second, on request, the lengths of the curves of an amortised geodesic network
(:class:`~vaemanifold.GeodesicNetwork`, the ``amortized`` solver) between
every two subset codes, measured on a coarser grid: true curve lengths, each
an upper bound of its geodesic distance, checked against Gauss-Newton
geodesics on a sample (:func:`vaemanifold.distances.reference_check`).

Scores
------
F-measure (Larsen & Aone 1999; Steinbach, Karypis & Kumar 2000): for a class
c of size n_c and a cluster k of size n_k sharing n_ck points, precision
P = n_ck / n_k, recall R = n_ck / n_c and F(c, k) = 2 P R / (P + R). Each class
takes its best cluster, and classes are averaged by size:

    F = sum_c (n_c / n) max_k F(c, k)          (in [0, 1]; 1 for a perfect clustering)

NMI is scikit-learn's ``normalized_mutual_info_score`` (arithmetic-mean
normalisation: I(C; K) / ((H(C) + H(K)) / 2)).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import kmedoids
import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from ..geodesic import distance
from ..manifold import DecoderManifold
from ..riemannian import LatentManifold, frechet_mean
from ..solvers.graph import GraphSolver

#: The digit sets of the paper.
DIGIT_SETS: tuple[tuple[int, ...], ...] = ((0, 1, 2), (3, 4, 7), (5, 6, 9))
#: The paper's Table (F-measure in %, mean ± std over 10 runs).
PAPER_F_MEASURE = {
    (0, 1, 2): {"riemannian": (94.28, 1.14), "euclidean": (77.57, 0.87)},
    (3, 4, 7): {"riemannian": (89.54, 1.61), "euclidean": (77.80, 0.91)},
    (5, 6, 9): {"riemannian": (81.13, 2.52), "euclidean": (64.93, 0.96)},
}
#: Clustering methods in table order, name -> (distance, algorithm); ``amortized_kmedoids`` only on request.
METHODS = {
    "amortized_kmedoids": ("geodesic (amortised network)", "k-medoids"),
    "riemannian_kmedoids": ("geodesic (graph)", "k-medoids"),
    "euclidean_kmedoids": ("Euclidean", "k-medoids"),
    "euclidean_kmeans": ("Euclidean", "k-means"),
}


# ------------------------------------------------------------------------- scores
def _labels(true, pred) -> tuple[np.ndarray, np.ndarray]:
    true, pred = np.asarray(true), np.asarray(pred)
    if true.ndim != 1 or pred.shape != true.shape or len(true) == 0:
        raise ValueError(f"labels must be two non-empty 1-D arrays of one length, got {true.shape} and {pred.shape}")
    return true, pred


def f_measure(true, pred) -> float:
    """Class-size-weighted best-match F1 (see the module docstring): (n,), (n,) -> float in [0, 1]."""
    true, pred = _labels(true, pred)
    table = contingency_matrix(true, pred).astype(np.float64)  # (classes, clusters): n_ck
    precision = table / table.sum(axis=0, keepdims=True)
    recall = table / table.sum(axis=1, keepdims=True)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    sizes = table.sum(axis=1)
    return float((sizes / sizes.sum() * f1.max(axis=1)).sum())


def nmi(true, pred) -> float:
    """Normalised mutual information (scikit-learn, arithmetic mean): (n,), (n,) -> float in [0, 1]."""
    true, pred = _labels(true, pred)
    return float(normalized_mutual_info_score(true, pred))


# ------------------------------------------------------------------- algorithms
def kmedoids_labels(D: np.ndarray, k: int, seed: int = 0, restarts: int = 10) -> np.ndarray:
    """k-medoids (FasterPAM) on a precomputed (n, n) distance matrix; best loss of ``restarts`` random starts.

    Returns:
        (n,) cluster labels in 0..k-1.
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square (n, n) matrix, got shape {D.shape}")
    if not np.isfinite(D).all():
        raise ValueError("D has non-finite entries (disconnected graph or failed geodesics)")
    if not 1 <= k <= len(D) or restarts < 1:
        raise ValueError(f"need 1 <= k <= n and restarts >= 1, got k={k}, n={len(D)}, restarts={restarts}")
    best = None
    for r in range(restarts):
        result = kmedoids.fasterpam(D, k, init="random", random_state=seed + r, n_cpu=1)
        if best is None or result.loss < best.loss:
            best = result
    return np.asarray(best.labels, dtype=np.int64)


def kmeans_labels(Z: np.ndarray, k: int, seed: int = 0, restarts: int = 10) -> np.ndarray:
    """scikit-learn's k-means (k-means++, ``restarts`` initialisations) on (n, d) points: (n,) labels."""
    return KMeans(n_clusters=k, n_init=restarts, random_state=seed).fit(np.asarray(Z, dtype=np.float64)).labels_


def euclidean_distances(Z: torch.Tensor) -> np.ndarray:
    """(n, d) -> (n, n) Euclidean distances (float64)."""
    Z = Z.detach().double().cpu()
    return torch.cdist(Z, Z).numpy()


def graph_distances(manifold: DecoderManifold, nodes: np.ndarray, solver: GraphSolver) -> np.ndarray:
    """Geodesic distances between graph nodes: shortest paths on ``solver``'s k-NN graph.

    Args:
        manifold: the latent space (its ``latents`` or the solver's ``points`` are the graph).
        nodes: (n,) indices of graph points.
        solver: a :class:`GraphSolver` (its cached graph is reused).

    Returns:
        (n, n) symmetric distances; inf between disconnected nodes.
    """
    device = manifold.latents.device if manifold.latents is not None else torch.device("cpu")
    graph = solver.graph(manifold, device)
    n = len(graph.points)
    nodes = np.asarray(nodes, dtype=np.int64)
    if nodes.ndim != 1 or (nodes < 0).any() or (nodes >= n).any():
        raise ValueError(f"nodes must be 1-D indices into the {n} graph points")
    adjacency = csr_matrix((graph.weights, (graph.rows, graph.cols)), shape=(n, n))
    D = dijkstra(adjacency, directed=False, indices=nodes)[:, nodes]
    return np.minimum(D, D.T)


def validate_distances(
    manifold: DecoderManifold, codes: torch.Tensor, pairs: int, solver: GraphSolver, seed: int, refine_options: dict
) -> dict:
    """Graph shortest-path distances against dense-measured geodesics on ``pairs`` random pairs of codes.

    Three distances per pair: the shortest path on the graph (what clustering
    uses), the dense length of the graph solver's curve, and the dense length
    of that curve refined by the spline solver (``refine_options``). Returns
    medians and extremes of the ratios to the refined length, Spearman's rank
    correlation, convergence counts and timings.
    """
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(codes), pairs)
    j = (i + rng.integers(1, len(codes), pairs)) % len(codes)
    D = graph_distances(manifold, np.concatenate([i, j]), solver)
    path = D[np.arange(pairs), pairs + np.arange(pairs)]
    options = dict(k=solver.k, edge_points=solver.edge_points, knots=solver.knots)
    start = time.perf_counter()
    curve = distance(
        manifold, codes[i], codes[j], method="graph", on_failure="keep", refine=None, **options
    ).cpu().double().numpy()
    middle = time.perf_counter()
    refined = distance(
        manifold, codes[i], codes[j], method="graph", on_failure="nan", refine="spline", refine_options=refine_options,
        **options,
    ).cpu().double().numpy()
    end = time.perf_counter()
    ok = np.isfinite(refined)

    def ratio(a: np.ndarray) -> dict:
        r = a[ok] / refined[ok]
        return {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())} if ok.any() else {}

    return {
        "pairs": pairs,
        "refine_converged": int(ok.sum()),
        "path_over_refined": ratio(path),
        "graph_curve_over_refined": ratio(curve),
        "spearman_path_vs_refined": float(spearmanr(path[ok], refined[ok]).statistic) if ok.sum() > 2 else None,
        "seconds_per_pair": {"graph_curve": (middle - start) / pairs, "graph_refined": (end - middle) / pairs},
        "refine_options": refine_options,
    }


# ------------------------------------------------------------------- experiment
@dataclass
class SubsetScores:
    """Scores of every method on one subset: method -> {"f_measure", "nmi"}."""

    seed: int
    scores: dict = field(default_factory=dict)


def cluster_subset(
    manifold: DecoderManifold,
    codes: torch.Tensor,
    labels: np.ndarray,
    index: np.ndarray,
    solver: GraphSolver,
    seed: int,
    restarts: int,
    amortized: Optional[np.ndarray] = None,
) -> tuple[SubsetScores, dict]:
    """Cluster the codes ``index`` of one subset by every method of :data:`METHODS`.

    Args:
        amortized: the subset's (n, n) amortised geodesic distances, or None to leave that method out.

    Returns:
        the scores and the predicted labels per method (arrays over ``index``).
    """
    true = labels[index]
    k = len(np.unique(true))
    geodesic = graph_distances(manifold, index, solver)
    predictions = {} if amortized is None else {"amortized_kmedoids": kmedoids_labels(amortized, k, seed, restarts)}
    predictions |= {
        "riemannian_kmedoids": kmedoids_labels(geodesic, k, seed, restarts),
        "euclidean_kmedoids": kmedoids_labels(euclidean_distances(codes[index]), k, seed, restarts),
        "euclidean_kmeans": kmeans_labels(codes[index].double().cpu().numpy(), k, seed, restarts),
    }
    scores = {name: {"f_measure": f_measure(true, pred), "nmi": nmi(true, pred)} for name, pred in predictions.items()}
    return SubsetScores(seed, scores), predictions


def draw_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` random members of every class (a seeded choice)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        if per_class > len(members):
            raise ValueError(f"subset_per_class={per_class} but class {value} has only {len(members)} codes")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def summarise(subsets: Sequence[SubsetScores]) -> dict:
    """method -> score -> {"mean", "std", "values"} over subsets (std with ddof=1 when n > 1), for the methods scored."""
    out: dict = {}
    for method in (m for m in METHODS if m in subsets[0].scores):
        out[method] = {}
        for score in ("f_measure", "nmi"):
            values = np.array([s.scores[method][score] for s in subsets])
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out[method][score] = {"mean": float(values.mean()), "std": std, "values": values.tolist()}
    return out


@dataclass
class ClassMeans:
    """Per class: the Euclidean and the Fréchet mean of latent codes and their decoded images.

    Attributes:
        classes: (C,) class values.
        euclidean, frechet: (C, d) means.
        euclidean_images, frechet_images: (C, D) decoder means at them.
        details: per class: points used, value, converged, reason, iterations, seconds,
            unconverged geodesics in the last iteration, and F at the Euclidean mean.
    """

    classes: list
    euclidean: torch.Tensor
    frechet: torch.Tensor
    euclidean_images: torch.Tensor
    frechet_images: torch.Tensor
    details: list = field(default_factory=list)


def class_means(
    manifold: DecoderManifold,
    decode: Callable[[torch.Tensor], torch.Tensor],
    codes: torch.Tensor,
    labels: np.ndarray,
    points: int,
    iterations: int,
    tol: float,
    seed: int,
    solver_options: dict,
) -> ClassMeans:
    """Fréchet mean (graph geodesics, Riemannian SGD) vs Euclidean mean of ``points`` random codes per class.

    The graph solver runs with ``on_failure='keep'``: a path it cannot find
    (disconnected graph) keeps the straight line, and the count of such
    geodesics is reported per class in ``details``.
    """
    latent = LatentManifold(manifold, method="graph", on_failure="keep", **solver_options)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels).tolist()
    euclid, frechet, details = [], [], []
    for value in classes:
        members = np.flatnonzero(labels == value)
        chosen = rng.choice(members, min(points, len(members)), replace=False)
        Z = codes[torch.as_tensor(chosen, device=codes.device)]
        result = frechet_mean(latent, Z, iterations=iterations, tol=tol)
        euclid.append(Z.mean(dim=0))
        frechet.append(result.mean)
        details.append(
            {
                "class": value,
                "points": len(chosen),
                "value": result.value,
                "value_at_euclidean_mean": result.history[0]["value"],
                "converged": result.converged,
                "reason": result.reason,
                "iterations": result.iterations,
                "seconds": result.seconds,
                "unconverged_geodesics": result.history[-1]["unconverged"],
            }
        )
    euclid_t, frechet_t = torch.stack(euclid), torch.stack(frechet)
    with torch.no_grad():
        return ClassMeans(classes, euclid_t, frechet_t, decode(euclid_t), decode(frechet_t), details)


def paper_row(digits: Sequence[int]) -> Optional[dict]:
    """The paper's F-measures (percent) for a digit set, if it is one of :data:`DIGIT_SETS`."""
    return PAPER_F_MEASURE.get(tuple(sorted(digits)))


def format_percent(stats: dict) -> str:
    """'mean ± std' of a fraction in percent."""
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"


def as_json(value):
    """Dataclasses, tensors and numpy values as plain JSON types (NaN and inf as None)."""
    if hasattr(value, "__dataclass_fields__"):
        return as_json(asdict(value))
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, torch.Tensor):
        return as_json(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return as_json(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
