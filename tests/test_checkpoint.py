"""Checkpoints: exact round trips, atomic writes, and clear refusals of bad files."""

import pickle

import pytest
import torch

import vaemanifold as vm
from vaemanifold.vae import CheckpointError, TrainConfig, VAEConfig, train
from vaemanifold.vae.checkpoint import FORMAT, MODEL_FILE, VERSION


@pytest.fixture(scope="module")
def model():
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(64, 20, generator=generator)
    y = torch.arange(64) % 3
    config = VAEConfig(data_dim=20, latent_dim=2, hidden=(16,), num_centers=4, activation="softplus")
    trained, _ = train(X, y, config, TrainConfig(epochs=2, batch_size=16), device="cpu", progress=False)
    return trained


def test_round_trip_gives_identical_outputs(model, tmp_path):
    path = model.save(tmp_path / "m.pt", metadata={"note": "hello", "numbers": [1, 2.5]})
    assert path == tmp_path / "m.pt"
    loaded = vm.load(path, device="cpu")
    assert loaded.config == model.config
    assert loaded.metadata == {"note": "hello", "numbers": [1, 2.5]}
    for (name, a), (other, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == other and torch.equal(a, b), name
    z, x = torch.randn(7, 2), torch.rand(7, 20)
    for got, want in zip(loaded.decode(z) + loaded.encode(x), model.decode(z) + model.encode(x)):
        assert torch.equal(got, want)
    assert torch.equal(loaded.manifold().metric(z), model.manifold().metric(z))


def test_folder_paths_and_no_leftover_temporary_files(model, tmp_path):
    path = model.save(tmp_path / "run")
    assert path == tmp_path / "run" / MODEL_FILE
    loaded = vm.load(tmp_path / "run")
    assert loaded.config == model.config and loaded.metadata == model.metadata  # saved by default
    model.save(tmp_path / "run")  # overwrite in place
    assert [p.name for p in (tmp_path / "run").iterdir()] == [MODEL_FILE]


def test_failed_write_keeps_the_old_file(model, tmp_path, monkeypatch):
    path = model.save(tmp_path / "m.pt")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        vm.load(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match=MODEL_FILE):
        vm.load(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 10])
def test_truncated_file_is_refused(model, tmp_path, keep):
    path = model.save(tmp_path / "m.pt")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)] if keep < 1 else raw[:keep])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        vm.load(path)


def test_wrong_kinds_are_refused(model, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("just some text\n")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        vm.load(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a vaemanifold VAE checkpoint"):
        vm.load(other)
    torch.save(torch.zeros(3), other)
    with pytest.raises(CheckpointError, match="format: 'Tensor'"):
        vm.load(other)
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps(TrainConfig()))  # arbitrary objects are never unpickled
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        vm.load(pickled)


def test_newer_version_and_damaged_content_are_refused(model, tmp_path):
    payload = torch.load(model.save(tmp_path / "m.pt"), weights_only=True)
    assert payload["format"] == FORMAT and payload["version"] == VERSION
    torch.save({**payload, "version": VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match=f"version {VERSION + 1}"):
        vm.load(tmp_path / "new.pt")
    state = dict(payload["state_dict"])
    del state["decoder_mean.0.weight"]
    torch.save({**payload, "state_dict": state}, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        vm.load(tmp_path / "damaged.pt")


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="VAE"):
        vm.vae.save(torch.nn.Linear(2, 2), tmp_path / "x.pt")
