"""Clustering scores against hand computations; k-medoids and graph distances on known geometry."""

import math

import numpy as np
import pytest
import torch

from vaemanifold import analytic
from vaemanifold.evaluation import clustering as cl
from vaemanifold.solvers.graph import GraphSolver

# Toy labelling: classes A = {0, 1, 2}, B = {3, 4, 5}; cluster 0 = {0, 1}, cluster 1 = {2, 3, 4, 5}.
TRUE = [0, 0, 0, 1, 1, 1]
PRED = [0, 0, 1, 1, 1, 1]


def test_f_measure_by_hand():
    # class A (3 points): cluster 0 has P = 2/2, R = 2/3 -> F = 2 * (2/3) / (5/3) = 4/5;
    #                     cluster 1 has P = 1/4, R = 1/3 -> F = 2/7; best 4/5.
    # class B (3 points): cluster 0 shares nothing -> F = 0;
    #                     cluster 1 has P = 3/4, R = 3/3 -> F = 2 * (3/4) / (7/4) = 6/7; best 6/7.
    # weighted by class size: F = 1/2 * 4/5 + 1/2 * 6/7 = 29/35.
    assert cl.f_measure(TRUE, PRED) == pytest.approx(29 / 35)
    assert cl.f_measure(TRUE, [5, 5, 5, 2, 2, 2]) == pytest.approx(1.0)  # label names do not matter
    # one cluster for everything: each class has P = 1/2, R = 1 -> F = 2/3
    assert cl.f_measure(TRUE, [0] * 6) == pytest.approx(2 / 3)


def test_nmi_by_hand():
    # p(class) = (1/2, 1/2): H(C) = ln 2; p(cluster) = (1/3, 2/3): H(K) = ln 3 - (2/3) ln 2.
    # joint: p(A,0) = 2/6, p(A,1) = 1/6, p(B,1) = 3/6, so
    # I = 1/3 ln((1/3)/(1/2*1/3)) + 1/6 ln((1/6)/(1/2*2/3)) + 1/2 ln((1/2)/(1/2*2/3))
    #   = 1/3 ln 2 - 1/6 ln 2 + 1/2 ln(3/2)
    H_C = math.log(2)
    H_K = math.log(3) - 2 / 3 * math.log(2)
    I = math.log(2) / 3 - math.log(2) / 6 + 0.5 * math.log(1.5)
    assert cl.nmi(TRUE, PRED) == pytest.approx(I / ((H_C + H_K) / 2))
    assert cl.nmi(TRUE, [1, 1, 1, 0, 0, 0]) == pytest.approx(1.0)


def test_scores_reject_bad_labels():
    with pytest.raises(ValueError, match="1-D"):
        cl.f_measure([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="1-D"):
        cl.nmi([], [])


def test_kmedoids_recovers_separated_groups():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(c, 0.1, size=(20, 2)) for c in (0.0, 3.0, 6.0)])
    D = cl.euclidean_distances(torch.as_tensor(points))
    labels = cl.kmedoids_labels(D, 3, seed=0, restarts=3)
    truth = np.repeat([0, 1, 2], 20)
    assert cl.f_measure(truth, labels) == pytest.approx(1.0)
    assert cl.f_measure(truth, cl.kmeans_labels(points, 3, seed=0)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-finite"):
        cl.kmedoids_labels(np.full((3, 3), np.inf), 2)


def test_graph_distances_approach_great_circle_on_the_sphere():
    # a dense chart grid: shortest paths are close to (and never much below) great-circle distances
    theta, phi = torch.meshgrid(torch.linspace(0.5, 2.6, 30), torch.linspace(-1.5, 1.5, 40), indexing="ij")
    points = torch.stack([theta, phi], -1).reshape(-1, 2).double()
    manifold = analytic.sphere_manifold()
    nodes = np.array([0, 333, 777, 1199])
    D = cl.graph_distances(manifold, nodes, GraphSolver(points=points, k=8, cache=False))
    truth = analytic.great_circle_distance(points[nodes].unsqueeze(1), points[nodes].unsqueeze(0)).numpy()
    off = ~np.eye(len(nodes), dtype=bool)
    ratio = D[off] / truth[off]
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0)
    assert ratio.min() > 0.99 and ratio.max() < 1.08


def test_subsets_and_summary():
    labels = np.repeat([3, 4, 7], 10)
    index = cl.draw_subset(labels, 4, seed=1)
    assert len(index) == 12 and all((labels[index] == v).sum() == 4 for v in (3, 4, 7))
    with pytest.raises(ValueError, match="only 10"):
        cl.draw_subset(labels, 11, seed=0)
    subsets = [cl.SubsetScores(s, {m: {"f_measure": 0.5 + 0.1 * s, "nmi": 0.2} for m in cl.METHODS}) for s in range(3)]
    summary = cl.summarise(subsets)
    assert summary["riemannian_kmedoids"]["f_measure"]["mean"] == pytest.approx(0.6)
    assert summary["riemannian_kmedoids"]["f_measure"]["std"] == pytest.approx(0.1)
    assert cl.paper_row((7, 4, 3))["riemannian"] == (89.54, 1.61)


def test_cluster_command_runs_end_to_end_with_tiny_settings(tmp_path):
    import json

    from vaemanifold.cli import main

    code = main([
        "cluster", "--quick", "--sets", "0,1", "--subsets", "2", "--subset-per-class", "12", "--epochs", "2",
        "--validate-pairs", "0", "--frechet-points", "3", "--restarts", "2", "--out", str(tmp_path),
    ])
    assert code == 0
    document = json.loads((tmp_path / "clustering.json").read_text())
    record = document["sets"][0]
    assert record["digits"] == [0, 1] and record["subset_size"] == 24 and record["model"]["per_digit"] == 500
    assert list(record["summary"]) == [m for m in cl.METHODS if m != "amortized_kmedoids"]  # only on request
    for method in record["summary"]:
        assert 0.5 <= record["summary"][method]["f_measure"]["mean"] <= 1.0
    assert len(record["class_means"]["frechet"]) == 2
    assert "| 0,1 | geodesic (graph) k-medoids |" in (tmp_path / "clustering.md").read_text()
    assert (tmp_path / "clusters_01.png").is_file() and (tmp_path / "means_01.png").is_file()
    # the cached model is reused with the same recipe
    assert main(["cluster", "--quick", "--sets", "0,1", "--subsets", "1", "--subset-per-class", "12", "--epochs", "2",
                 "--validate-pairs", "0", "--frechet-points", "0", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "clustering.json").read_text())["sets"][0]["model"]["trained"] is False


def test_cluster_command_with_amortized_distances(tmp_path):
    import json

    from vaemanifold import GeodesicNetwork
    from vaemanifold.cli import main

    arguments = [
        "cluster", "--quick", "--sets", "0,1", "--subsets", "2", "--subset-per-class", "8", "--epochs", "2",
        "--validate-pairs", "0", "--frechet-points", "0", "--restarts", "2", "--amortized", "--network-seconds", "6",
        "--check-pairs", "8",
        "--out", str(tmp_path),
    ]
    assert main(arguments) == 0
    record = json.loads((tmp_path / "clustering.json").read_text())["sets"][0]
    assert list(record["summary"]) == list(cl.METHODS)  # the amortised row first, in table order
    assert 0.5 <= record["summary"]["amortized_kmedoids"]["f_measure"]["mean"] <= 1.0
    assert record["model"]["network"]["fitted"] is True and len(record["amortized"]) == 2
    assert all(check["pairs"] == 16 * 15 // 2 and check["grid"] == 64 for check in record["amortized"])
    # every entry is the length of a real curve between the codes: not below the geodesics' in the median
    ratios = [r for check in record["amortized"] for r in check["check"]["ratios"]]
    assert ratios and np.median(ratios) > 0.99
    table = (tmp_path / "clustering.md").read_text()
    assert "| 0,1 | geodesic (amortised network) k-medoids |" in table and "D / L_GN median" in table
    network_file = tmp_path / "models" / "digits-01" / "geodesic_network.pt"
    GeodesicNetwork.load(network_file)
    # reused while it fits the set's VAE, and so are the subsets' results; a third subset is computed
    assert main([*arguments[:5], "3", *arguments[6:]]) == 0
    again = json.loads((tmp_path / "clustering.json").read_text())["sets"][0]
    assert again["model"]["network"]["fitted"] is False and again["subsets_from_earlier_runs"] == 2
    assert again["subsets"][:2] == record["subsets"] and again["amortized"][:2] == record["amortized"]
    assert len(again["subsets"]) == 3 and again["subsets"][2]["seed"] == record["subsets"][1]["seed"] + 1
    assert "2 of 3 subsets read from earlier runs" in (tmp_path / "clustering.md").read_text()
    # other settings: computed afresh
    assert main([*arguments[:-3], "4", "--out", str(tmp_path)]) == 0  # --check-pairs 4
    assert json.loads((tmp_path / "clustering.json").read_text())["sets"][0]["subsets_from_earlier_runs"] == 0


def test_a_subset_file_is_read_back_only_under_its_own_key(tmp_path):
    from vaemanifold.evaluation.clustering_experiment import read_subset, write_subset

    scores = cl.SubsetScores(3, {"euclidean_kmedoids": {"f_measure": 0.9, "nmi": 0.7}})
    write_subset(tmp_path, 0, {"seed": 3}, scores, {"euclidean_kmedoids": np.array([0, 1, 1])}, None)
    read = read_subset(tmp_path, 0, {"seed": 3})
    assert read is not None and read[0] == scores and read[2] is None
    assert np.array_equal(read[1]["euclidean_kmedoids"], [0, 1, 1])
    assert read_subset(tmp_path, 0, {"seed": 4}) is None  # another key
    assert read_subset(tmp_path, 1, {"seed": 3}) is None  # none written
    (tmp_path / "subset-0.json").write_text('{"key": {"seed": 3}, "scores"')  # cut short
    assert read_subset(tmp_path, 0, {"seed": 3}) is None


def test_a_subset_is_keyed_by_this_package_s_code(monkeypatch):
    from vaemanifold.evaluation import clustering_experiment as experiment

    settings = {"seed": 0, "subset_per_class": 8, "k": 5, "restarts": 2, "check_pairs": 8}
    key = experiment.subset_key(settings, 1, {"model": "m"})
    monkeypatch.setattr(experiment, "package_sha256", lambda: "0" * 64)  # as if the package had changed since
    assert experiment.subset_key(settings, 1, {"model": "m"}) != key
