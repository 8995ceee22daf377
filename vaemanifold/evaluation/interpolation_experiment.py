"""The interpolation experiment, as ``vaemanifold interpolate`` runs it: lines against geodesics, decoded.

Per model: a pixel classifier on its data, same-class or cross-class pairs of
held-out test images, every method's curves cut into frames at equal metric arc length and
decoded, class crossings and smoothness scored (:mod:`vaemanifold.evaluation.interpolation`),
figures; then ``interpolation.json`` and the table ``interpolation.md``.

``options`` below is the command's parsed arguments, or any object with the
attributes ``root``, ``classifier``, ``seed``, ``frames``, ``batch``,
``show``, ``strip_frames``, ``quick`` and ``pairing`` (one of :data:`PAIRINGS`).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Iterable

import torch

from .. import data
from . import interpolation as ip
from .classifier import train_classifier
from .clustering import as_json
from .tables import markdown_table

#: How the pairs of test images are drawn: both of one class, or of two classes (the class pairs in turn).
PAIRINGS = {"same-class": ip.same_class_pairs, "cross-class": ip.cross_class_pairs}


def model_data(metadata: dict) -> tuple[str, object, object, int]:
    """(dataset, classes, per_class, split seed) of a model's training data, from its checkpoint metadata
    (presets keep them under ``recipe``, ``vaemanifold train`` at the top level; the split seed is the schedule's)."""
    info = metadata.get("recipe", metadata)
    if info.get("dataset") not in data.IMAGE_DATASETS:
        raise ValueError(
            f"the model's metadata names no image data set (dataset={info.get('dataset')!r}); "
            "interpolate needs the model's training images and their held-out test split"
        )
    return info["dataset"], info.get("classes"), info.get("per_class"), int((info.get("schedule") or {}).get("seed", 0))


def run_model(name: str, model, args, methods: dict, pairs: int, out: Path) -> dict:
    """Classifier, pairs, every method, figures, summary for one model."""
    clock = time.perf_counter()
    dataset, classes, per_class, seed = model_data(model.metadata)
    X, y = data.load(dataset, "train", classes=classes, per_class=per_class, root=args.root, seed=seed)
    X_test, y_test = data.load(dataset, "test", classes=classes, root=args.root, seed=seed)
    classifier = train_classifier(X, y, X_test, y_test, kind=args.classifier, seed=args.seed)
    print(f"{name}: classifier ({args.classifier}) test accuracy {classifier.accuracy:.2%} on {len(y_test)} images", flush=True)

    model = model.double()  # geometry in float64
    manifold = model.manifold()
    first, second = PAIRINGS[args.pairing](y_test, pairs, args.seed)
    with torch.no_grad():
        z0 = model.encode(X_test[first].double())[0]
        z1 = model.encode(X_test[second].double())[0]
    labels = torch.stack([y_test[first], y_test[second]], dim=1).numpy()  # (P, 2) end classes

    def decode(z: torch.Tensor) -> torch.Tensor:
        return model.decode(z)[0]

    runs = ip.run_interpolation(manifold, decode, classifier, z0, z1, labels, methods, args.frames, args.batch, log=print)
    summary = ip.summarise(runs, labels)

    show = list(range(min(args.show, pairs)))
    strips = []
    for run in runs:
        points, _ = ip.equal_arc_frames(manifold, run.curves[0][: len(show)], args.strip_frames)
        with torch.no_grad():
            strips.append(decode(points))
    ip.strip_figure(
        runs, strips, show, labels, out / f"strips_{name}.png",
        title=f"{name}: decoded frames at equal metric arc length", side=int(round(X.shape[1] ** 0.5)),
    )
    if manifold.latent_dim == 2:
        from ..plotting import plot_latent

        light = copy.deepcopy(model).float().manifold()  # plotting's heat-map grid is float32
        curves = {run.method: run.points[show].float() for run in runs}
        plot_latent(light, light.latents, model.labels.cpu(), curves=curves, path=out / f"latent_{name}.png",
                    title=f"{name}: first {len(show)} pairs, all methods")
    records = [
        {
            "pair": p, "first": int(first[p]), "second": int(second[p]), "classes": labels[p].tolist(),
            **{
                run.method: {
                    "converged": bool(run.converged[p]), "reason": run.reasons[p], "leaves_class": bool(run.leaves[p]),
                    "extra_classes": int(run.extra[p]),
                    "off_class_frames": float(run.off_class[p]), "step_cv": float(run.variation[p]),
                    "length": float(run.length[p]), "labels": run.predicted[p].tolist(),
                }
                for run in runs
            },
        }
        for p in range(pairs)
    ]
    return {
        "name": name, "dataset": dataset, "classes": classes, "data_source": data.source(dataset, "test", args.root),
        "test_images": len(y_test), "classifier": classifier.describe(), "summary": summary, "records": records,
        "seconds": time.perf_counter() - clock,
    }


def markdown(document: dict) -> str:
    s = document["settings"]
    lines = [
        "# Interpolation quality: straight lines vs geodesics",
        "",
        f"{s['pairs']} {s['pairing']} pairs of held-out test images per model (posterior means); every curve cut into "
        f"{s['frames']} frames at equal metric arc length and decoded (mean images). *Leaves*: some frame is "
        "labelled by the pixel classifier as neither end's class; *extra classes*: how many distinct such classes the "
        "frames visit, mean over pairs. Both are counted over pairs whose end frames are labelled as their ends' "
        "classes and on which the method converged (*counted*), the straight line on the same pairs beside each. "
        "*Fewer / more*: counted pairs on which the method's curve visits fewer / more extra classes than the line. "
        "*Step CV*: coefficient of variation of the distances between consecutive decoded frames (median over pairs).",
        "",
    ]

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    def num(x, spec=".3f"):
        return "–" if x is None else format(x, spec)

    rows = [
        (model["name"], pct(model["classifier"]["accuracy"]), method, f"{m['converged']}/{m['pairs']}", m["counted"],
         pct(m["leaves_class"]), pct(m["line_leaves_class_same_pairs"]), num(m["extra_classes_mean"], ".2f"),
         num(m["line_extra_classes_mean_same_pairs"], ".2f"),
         f"{m['fewer_extra_classes_than_line']} / {m['more_extra_classes_than_line']}", num(m["step_cv_median"]),
         num(m["line_step_cv_median_same_pairs"]), num(m["length_over_line_median"]), f"{m['seconds_per_pair']:.2f}")
        for model in document["models"]
        for method, m in model["summary"]["methods"].items()
    ]
    header = ("model", "classifier acc.", "method", "converged", "counted", "leaves", "line, same pairs",
              "extra classes", "line, same pairs", "fewer / more", "step CV", "line step CV", "length / line", "s/pair")
    lines += markdown_table(header, rows)
    lines += ["", f"Total wall time {document['seconds']:.0f} s on {document['threads']} thread(s); command: `{document['command']}`", ""]
    return "\n".join(lines)


def run_interpolation_experiment(
    models: Iterable[tuple[str, object]], options, methods: dict, pairs: int, out: Path, command: str
) -> tuple[dict, str]:
    """Every (name, model) of ``models``; writes interpolation.json and interpolation.md under ``out``.

    Returns:
        the JSON document and the markdown table.
    """
    clock = time.perf_counter()
    records = [run_model(name, model, options, methods, pairs, out) for name, model in models]
    document = as_json({
        "settings": {"pairs": pairs, "pairing": options.pairing, "frames": options.frames, "methods": methods, "quick": options.quick,
                     "classifier": options.classifier, "seed": options.seed},
        "threads": torch.get_num_threads(),
        "command": command,
        "seconds": time.perf_counter() - clock,
        "models": records,
    })
    (out / "interpolation.json").write_text(json.dumps(document, indent=1))
    table = markdown(document)
    (out / "interpolation.md").write_text(table)
    return document, table
