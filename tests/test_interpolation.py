"""Interpolation scoring: arc-length frames against closed forms, scores by hand, one small end-to-end run."""

import numpy as np
import pytest
import torch

from vaemanifold import DecoderManifold, SplineCurve, analytic
from vaemanifold.evaluation import interpolation as ip
from vaemanifold.evaluation.classifier import train_classifier


def test_equal_arc_frames_undo_a_nonuniform_parametrisation():
    A = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    manifold = analytic.linear_manifold(A)
    z0 = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    z1 = torch.tensor([[1.0, 2.0], [-2.0, 0.5]], dtype=torch.float64)
    curve = SplineCurve(z0, z1, num_nodes=5, requires_grad=False)
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    s = t.view(1, -1, 1)
    curve.fit(t, z0.unsqueeze(1) + s**2 * (z1 - z0).unsqueeze(1))  # c(t) = z0 + t^2 (z1 - z0), exact in the spline
    points, length = ip.equal_arc_frames(manifold, curve, frames=6, grid=2001)
    # on f(z) = A z the metric length is ||A (z1 - z0)|| and equal arc length means equal steps along the segment
    expected = z0.unsqueeze(1) + torch.linspace(0, 1, 6, dtype=torch.float64).view(1, -1, 1) * (z1 - z0).unsqueeze(1)
    torch.testing.assert_close(points, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(length, ((z1 - z0) @ A.T).norm(dim=-1), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="frames"):
        ip.equal_arc_frames(manifold, curve, frames=1)


def test_step_variation_and_class_crossings_by_hand():
    # frames at positions 0, 1, 2, 4 along one axis: steps 1, 1, 2 -> mean 4/3,
    # sample std sqrt(((1/3)^2 + (1/3)^2 + (2/3)^2) / 2) = sqrt(1/3), CV = sqrt(1/3) / (4/3)
    images = torch.tensor([[0.0, 1.0, 2.0, 4.0]], dtype=torch.float64).unsqueeze(-1)
    torch.testing.assert_close(ip.step_variation(images), torch.tensor([(1 / 3) ** 0.5 / (4 / 3)], dtype=torch.float64))
    even = torch.linspace(0, 1, 5, dtype=torch.float64).view(1, 5, 1).expand(2, 5, 3)
    assert torch.allclose(ip.step_variation(even), torch.zeros(2, dtype=torch.float64))
    predicted = np.array([[3, 3, 3], [3, 5, 3], [1, 1, 1]])
    assert ip.leaves_class(predicted, np.array([3, 3, 1])).tolist() == [False, True, False]
    assert ip.extra_classes(predicted, np.array([3, 3, 1])).tolist() == [0, 1, 0]


def test_extra_classes_of_cross_class_pairs_by_hand():
    predicted = np.array([[1, 1, 4, 4, 2], [1, 7, 8, 7, 2], [1, 2, 1, 2, 2], [1, 1, 1, 1, 1]])
    ends = np.array([[1, 2], [1, 2], [1, 2], [1, 2]])
    # pair 0 visits 4; pair 1 visits 7 and 8; pair 2 only its end classes; pair 3 never reaches class 2 (no extra class)
    assert ip.extra_classes(predicted, ends).tolist() == [1, 2, 0, 0]
    assert ip.leaves_class(predicted, ends).tolist() == [True, True, False, False]
    np.testing.assert_allclose(ip.off_class_frames(predicted, ends).mean(axis=1), [0.4, 0.6, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"\(P,\) or \(P, 2\)"):
        ip.extra_classes(predicted, np.zeros((4, 3), dtype=int))


def test_same_class_pairs():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    first, second = ip.same_class_pairs(labels, 9, seed=3)
    assert torch.equal(labels[first], labels[second]) and bool((first != second).all())
    assert set(labels[first].tolist()) == {0, 1}  # class 2 has one sample
    with pytest.raises(ValueError, match="two samples"):
        ip.same_class_pairs(torch.tensor([0, 1, 2]), 2)


def test_cross_class_pairs():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    first, second = ip.cross_class_pairs(labels, 7, seed=1)
    assert bool((labels[first] < labels[second]).all())
    # the three class pairs in turn
    assert list(zip(labels[first].tolist(), labels[second].tolist()))[:4] == [(0, 1), (0, 2), (1, 2), (0, 1)]
    with pytest.raises(ValueError, match="fewer than two classes"):
        ip.cross_class_pairs(torch.tensor([4, 4, 4]), 2)


def test_end_to_end_on_a_random_decoder():
    torch.manual_seed(0)
    decoder = analytic.RandomDecoder(2, data_dim=16, seed=2).double()
    codes = torch.randn(300, 2, dtype=torch.float64)
    manifold = DecoderManifold(decoder.mean, decoder.std, latents=codes)
    with torch.no_grad():
        images = decoder.mean(codes)
    labels = (codes[:, 0] > 0).long()  # two "classes" split by the first latent coordinate
    classifier = train_classifier(images[:200], labels[:200], images[200:], labels[200:], kind="logistic")
    assert classifier.accuracy > 0.8 and classifier.predict(images[:5]).shape == (5,)
    first, second = ip.same_class_pairs(labels, 6, seed=0)
    runs = ip.run_interpolation(
        manifold, decoder.mean, classifier, codes[first], codes[second], labels[first].numpy(),
        {"graph": {"k": 8}}, frames=8,
    )
    assert [r.method for r in runs] == ["linear", "graph"]
    line, graph = runs
    torch.testing.assert_close(line.points[:, 0], codes[first])
    torch.testing.assert_close(graph.points[:, -1], codes[second], atol=1e-6, rtol=0)
    assert line.images.shape == (6, 8, 16) and line.predicted.shape == (6, 8)
    summary = ip.summarise(runs, labels[first].numpy())
    eligible = (line.predicted[:, 0] == labels[first].numpy()) & (line.predicted[:, -1] == labels[first].numpy())
    assert summary["eligible_pairs"] == int(eligible.sum())
    assert summary["methods"]["linear"]["counted"] == int(eligible.sum())
    assert summary["methods"]["linear"]["length_over_line_median"] == pytest.approx(1.0)
    assert summary["methods"]["graph"]["converged"] == 6
    # the line is scored on the same pairs beside each method
    assert summary["methods"]["graph"]["line_leaves_class_same_pairs"] == summary["methods"]["linear"]["leaves_class"]
    assert summary["methods"]["graph"]["line_extra_classes_mean_same_pairs"] == summary["methods"]["linear"]["extra_classes_mean"]

    # cross-class pairs: the end frames are scored against each end's class
    first, second = ip.cross_class_pairs(labels, 6, seed=0)
    ends = torch.stack([labels[first], labels[second]], dim=1).numpy()
    runs = ip.run_interpolation(manifold, decoder.mean, classifier, codes[first], codes[second], ends, {}, frames=8)
    line = runs[0]
    summary = ip.summarise(runs, ends)
    eligible = (line.predicted[:, 0] == ends[:, 0]) & (line.predicted[:, -1] == ends[:, 1])
    assert summary["eligible_pairs"] == int(eligible.sum())
    # two classes only: a frame is always one of the ends' classes
    assert summary["methods"]["linear"]["extra_classes_mean"] in (0.0, None) and not line.leaves.any()


def test_interpolate_command_runs_end_to_end_with_tiny_settings(tmp_path):
    import json

    from vaemanifold import data
    from vaemanifold.cli import main
    from vaemanifold.vae import TrainConfig, VAEConfig, train

    X, y = data.load("mnist", "train", classes=(0, 1), per_class=150)
    model, _ = train(X, y, VAEConfig(data_dim=784, hidden=(32, 16), num_centers=16), TrainConfig(epochs=2), device="cpu",
                     progress=False)
    model.metadata = {"dataset": "mnist", "classes": [0, 1], "per_class": 150, "schedule": {"seed": 0}}
    model.save(tmp_path / "model")
    for pairing in ("same-class", "cross-class"):
        out = tmp_path / pairing
        code = main([
            "interpolate", "--model", str(tmp_path / "model"), "--pairs", "3", "--methods", "graph", "--frames", "5",
            "--strip-frames", "3", "--show", "2", "--batch", "2", "--classifier", "logistic", "--out", str(out),
            "--pairing", pairing,
        ])
        assert code == 0
        document = json.loads((out / "interpolation.json").read_text())
        model_doc = document["models"][0]
        assert document["settings"]["pairing"] == pairing
        assert model_doc["dataset"] == "mnist" and 0.5 < model_doc["classifier"]["accuracy"] <= 1.0
        assert set(model_doc["summary"]["methods"]) == {"linear", "graph"}
        assert len(model_doc["records"]) == 3 and len(model_doc["records"][0]["graph"]["labels"]) == 5
        first_classes, second_classes = zip(*(r["classes"] for r in model_doc["records"]))
        assert (first_classes == second_classes) == (pairing == "same-class")
        assert (out / "strips_model.png").is_file() and (out / "latent_model.png").is_file()
        assert f"3 {pairing} pairs" in (out / "interpolation.md").read_text()
