"""The VAE with an RBF precision network: geometry requirements, training, reproducibility, presets, CLI."""

import math

import pytest
import torch

import vaemanifold as vm
from vaemanifold import data
from vaemanifold.cli import main
from vaemanifold.vae import PRESETS, VAE, RBFPrecision, TrainConfig, VAEConfig, cache_dir, pretrained, sigma_ratio, train
from vaemanifold.vae.presets import Preset

TINY = dict(hidden=(32,), num_centers=8)
SCHEDULE = dict(epochs=40, batch_size=16, lr=3e-3)


def tiny_training(seed=0, epochs=40):
    X, y = data.load("mnist", classes=(0, 1, 7), per_class=50)
    config = VAEConfig(data_dim=784, latent_dim=2, **TINY)
    return train(X, y, config, TrainConfig(**{**SCHEDULE, "epochs": epochs, "seed": seed}), device="cpu", progress=False)


@pytest.fixture(scope="module")
def trained():
    return tiny_training()


def test_sigma_rises_tenfold_far_from_the_data(trained):
    model, _ = trained
    _, near = model.decode(model.latents)
    _, far = model.decode(model.far_points(radii=3.0))
    ratio = far.mean(dim=-1).min() / near.mean(dim=-1).median()
    assert ratio >= 10, f"sigma(far)/sigma(data) = {ratio:.1f}"
    assert sigma_ratio(model) == pytest.approx(ratio.item())
    # far from every centre sigma approaches zeta^(-1/2) and never exceeds it
    _, very_far = model.decode(model.latents.mean(0) + 1e3 * torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    torch.testing.assert_close(very_far, torch.full_like(very_far, model.config.zeta**-0.5))
    assert far.max() <= model.config.zeta**-0.5


def test_metric_is_finite_and_psd_well_beyond_the_data(trained):
    model, _ = trained
    manifold = model.manifold()
    low, high = model.latents.min(0).values, model.latents.max(0).values
    span = high - low
    axes = [torch.linspace(low[i] - 3 * span[i], high[i] + 3 * span[i], 41) for i in range(2)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="xy"), dim=-1).reshape(-1, 2)
    M = manifold.metric(grid)
    assert torch.isfinite(M).all()
    assert torch.linalg.eigvalsh(M).min() >= -1e-4 * M.diagonal(dim1=-2, dim2=-1).amax()
    assert not torch.isnan(manifold.log_magnification(grid)).any()


def test_manifold_metric_matches_autograd(trained):
    model, _ = trained
    manifold = model.manifold()
    assert torch.equal(manifold.latents, model.latents)
    z = model.latents[:3].clone()

    def f(point):
        mean, std = model.decode(point)
        return torch.cat([mean, std], dim=-1)

    expected = torch.stack([J.T @ J for J in (torch.autograd.functional.jacobian(f, zi) for zi in z)])
    torch.testing.assert_close(manifold.metric(z), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_rbf_network_follows_the_paper():
    torch.manual_seed(0)
    blobs = torch.cat([torch.randn(50, 2) * 0.1, torch.randn(50, 2) * 0.3 + torch.tensor([5.0, 0.0])])
    rbf = RBFPrecision(latent_dim=2, data_dim=3, num_centers=2, zeta=0.01)
    assignment = rbf.fit_centres(blobs, bandwidth_scale=1.5, seed=0)
    for k in range(2):
        members = blobs[assignment == k]
        centre = members.mean(0)
        torch.testing.assert_close(rbf.centres[k], centre, atol=1e-5, rtol=0)
        spread = (members - centre).norm(dim=-1).mean()
        torch.testing.assert_close(rbf.bandwidths[k], 0.5 / (1.5 * spread) ** 2, rtol=1e-4, atol=0)
    with torch.no_grad():
        rbf.log_weights.copy_(torch.randn(3, 2))
    z = torch.randn(4, 2) * 3
    v = torch.exp(-rbf.bandwidths * ((z[:, None] - rbf.centres) ** 2).sum(-1))
    beta = v @ rbf.log_weights.exp().T + 0.01
    torch.testing.assert_close(rbf(z), beta**-0.5)
    with pytest.raises(ValueError, match="zeta"):
        RBFPrecision(2, 3, 2, zeta=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rbf_activations_are_exact_near_the_centres_and_never_subnormal(dtype):
    rbf = RBFPrecision(latent_dim=1, data_dim=2, num_centers=1, zeta=0.01).to(dtype)
    tiny = torch.finfo(dtype).tiny
    z = torch.linspace(0, 40, 4001, dtype=dtype).unsqueeze(-1)  # exponents 0 .. 1600: far into exp's subnormals
    v = rbf.activations(z).squeeze(-1)
    exact = torch.exp(-z.squeeze(-1) ** 2)
    assert not ((v > 0) & (v < tiny)).any()
    kept = v > 0
    torch.testing.assert_close(v[kept], exact[kept], rtol=0, atol=0)
    assert exact[~kept].max() < tiny ** 0.7  # only values far below any that count are cut
    assert kept.sum() > 1 and (~kept).sum() > 1


def test_training_lowers_the_loss_and_phase_two_is_monotone(trained):
    model, history = trained
    losses = [e["loss"] for e in history.mean_phase]
    assert losses[-1] < losses[0] - 100
    variance = [e["loss"] for e in history.variance_phase]
    assert all(b <= a + 1e-4 * abs(a) for a, b in zip(variance, variance[1:])), variance  # MM never goes up
    assert variance[-1] < variance[0]
    summary = history.summary
    X, _ = data.load("mnist", classes=(0, 1, 7), per_class=50)
    baseline = ((X - X.mean(0)) ** 2).mean().item()  # predicting the mean image
    assert summary["recon_mse"] < 0.8 * baseline, (summary["recon_mse"], baseline)
    assert math.isfinite(summary["elbo"]) and summary["sigma_ratio"] >= 10
    assert set(history.seconds) == {"mean", "variance", "total"}
    assert model.labels.tolist()[:3] == [0, 0, 0] and len(model.labels) == 150


def test_same_seed_identical_weights_other_seed_different(trained):
    first, _ = trained
    second, _ = tiny_training(seed=0)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    third, _ = tiny_training(seed=1, epochs=1)
    assert not torch.equal(third.encoder[0].weight, tiny_training(seed=0, epochs=1)[0].encoder[0].weight)


def test_encode_decode_shapes_and_errors(trained):
    model, _ = trained
    x = torch.rand(5, 784)
    mean, std = model.encode(x)
    assert mean.shape == std.shape == (5, 2) and (std > 0).all()
    mu, sigma = model.decode(torch.randn(3, 4, 2))
    assert mu.shape == sigma.shape == (3, 4, 784) and (mu >= 0).all() and (mu <= 1).all()
    with pytest.raises(ValueError, match=r"\(\.\.\., 784\)"):
        model.encode(torch.rand(5, 10))
    with pytest.raises(ValueError, match="data in \\[0, 1\\]"):
        train(torch.randn(20, 4), config=VAEConfig(4, num_centers=2), progress=False)
    with pytest.raises(ValueError, match="num_centers"):
        train(torch.rand(5, 4), config=VAEConfig(4, num_centers=8), progress=False)
    with pytest.raises(ValueError, match="activation"):
        VAEConfig(4, activation="relu")
    with pytest.raises(RuntimeError, match="variance network is not fitted"):
        vm.vae.VAE(VAEConfig(4)).manifold()


def test_identity_output_on_a_synthetic_set():
    X, y = data.load("moons", per_class=100)
    config = VAEConfig(X.shape[1], output="identity", **TINY)
    model, history = train(X, y, config, TrainConfig(**SCHEDULE), progress=False)
    assert history.mean_phase[-1]["loss"] < history.mean_phase[0]["loss"]
    assert history.summary["sigma_ratio"] >= 10


def test_cache_dir_follows_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("VAEMANIFOLD_CACHE", raising=False)
    assert cache_dir("mnist-2d") == vm.vae.presets.DEFAULT_CACHE / "mnist-2d"
    monkeypatch.setenv("VAEMANIFOLD_CACHE", str(tmp_path / "env"))
    assert cache_dir("mnist-8d") == tmp_path / "env" / "mnist-8d"
    assert cache_dir("fashion-2d", tmp_path / "arg") == tmp_path / "arg" / "fashion-2d"
    with pytest.raises(ValueError, match="'mnist-2d'"):
        cache_dir("imagenet")
    assert {"mnist-2d", "mnist-8d", "fashion-2d"} <= set(PRESETS)


def test_pretrained_trains_once_then_reuses(monkeypatch, tmp_path):
    preset = Preset("tiny", "mnist", 2, classes=(0, 1), per_class=40, epochs=3, model=dict(TINY))
    monkeypatch.setitem(PRESETS, "tiny", preset)
    trained = pretrained("tiny", cache=tmp_path, progress=False)
    folder = tmp_path / "tiny"
    assert {"model.pt", "history.json", "history.png"} <= {p.name for p in folder.iterdir()}
    assert trained.metadata["loaded_from"] is None
    reused = pretrained("tiny", cache=tmp_path, progress=False)
    assert reused.metadata["loaded_from"] == str(folder / "model.pt")
    z = torch.randn(6, 2)
    torch.testing.assert_close(reused.decode(z), trained.decode(z), rtol=0, atol=0)
    monkeypatch.setitem(PRESETS, "tiny", Preset("tiny", "mnist", 2, classes=(0, 1), per_class=40, epochs=2, model=dict(TINY)))
    with pytest.warns(UserWarning, match="another recipe"):
        retrained = pretrained("tiny", cache=tmp_path, progress=False)
    assert retrained.metadata["loaded_from"] is None
    (folder / "model.pt").write_bytes(b"garbage")
    with pytest.raises(vm.vae.CheckpointError, match="retrain=True"):
        pretrained("tiny", cache=tmp_path, progress=False)


def test_cli_train_writes_a_loadable_run(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "moons", "--per-class", "60", "--hidden", "16", "--centers", "6",
                 "--epochs", "3", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    for word in ("ELBO", "reconstruction error", "trained in", "checkpoint"):
        assert word in printed
    model = vm.load(out)
    assert model.config.output == "identity" and model.metadata["dataset"] == "moons"
    assert (out / "history.png").is_file() and (out / "history.json").is_file()


def test_cli_reports_bad_input_as_an_error(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist", "--classes", "0,42", "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2
    assert "classes [42] are not in the data" in capsys.readouterr().err


def test_heat_map_grid_orientation_and_figure(trained, tmp_path):
    from vaemanifold.plotting import magnification_grid, plot_latent

    model, _ = trained
    manifold = model.manifold()
    extent = (-1.0, 2.0, -3.0, 0.5)
    values, seconds = magnification_grid(manifold, extent, resolution=5)
    assert values.shape == (5, 5) and seconds >= 0
    row, col = 1, 3  # row i is y_i, column j is x_j (imshow with origin="lower")
    point = torch.tensor([[extent[0] + col * 3.0 / 4, extent[2] + row * 3.5 / 4]])
    assert values[row, col] == pytest.approx(manifold.log_magnification(point).item(), rel=1e-5)
    line = torch.stack([model.latents[0] + t * (model.latents[1] - model.latents[0]) for t in torch.linspace(0, 1, 9)])
    ax = plot_latent(manifold, labels=model.labels, curves={"line": line}, path=tmp_path / "latent.png", resolution=20)
    assert (tmp_path / "latent.png").stat().st_size > 1000 and ax.magnification_seconds >= 0
    with pytest.raises(ValueError, match="2-D latent"):
        magnification_grid(vm.DecoderManifold(torch.nn.Linear(3, 4)), extent)


def test_the_convolutional_decoder_and_its_metric():
    config = VAEConfig(data_dim=784, latent_dim=3, decoder="conv", activation="silu", num_centers=4)
    model = VAE(config).double()
    z = torch.randn(2, 5, 3, dtype=torch.float64)
    assert model.decoder_mean(z).shape == (2, 5, 784)  # any leading batch shape
    model.variance_fitted.fill_(True)
    model.latents = torch.randn(8, 3, dtype=torch.float64)
    M = model.manifold()
    point = torch.randn(1, 3, dtype=torch.float64)
    J_mu = torch.autograd.functional.jacobian(lambda p: model.decoder_mean(p), point[0])
    J_sigma = torch.autograd.functional.jacobian(lambda p: model.variance(p), point[0])
    torch.testing.assert_close(M.metric(point)[0], J_mu.T @ J_mu + J_sigma.T @ J_sigma)
    with pytest.raises(ValueError, match="side divisible by 4"):
        VAEConfig(data_dim=100 * 7, decoder="conv")
    with pytest.raises(ValueError, match="unknown decoder"):
        VAEConfig(data_dim=784, decoder="transformer")


def test_the_convolutional_presets_are_registered_beside_the_benchmark_ones():
    from vaemanifold.vae.presets import BENCHMARK_PRESETS

    conv = {name for name in PRESETS if "-conv-" in name}
    assert conv == {f"{data}-conv-{d}d" for data in ("mnist", "fashion") for d in (2, 8, 32)}
    assert all(PRESETS[name].model["decoder"] == "conv" for name in conv)
    assert set(BENCHMARK_PRESETS) == {"mnist-2d", "mnist-8d", "fashion-2d"}
