"""Data sets: official SVHN format-2 files (downloaded and MD5-verified) and sklearn digits.

Images stay uint8 (N, 32, 32, 3) until a batch is drawn: full SVHN train+extra is
~600k images (1.8 GB as uint8, 7 GB as float32), so conversion and per-image
standardization happen per batch. No TensorFlow here, so data loads without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubetune_trainer.config import TrainConfig, expand_path

log = logging.getLogger("kubetune_trainer")

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_URL_ENV = "KUBETUNE_SVHN_URL"
# Official MD5s (same as torchvision.datasets.SVHN).
SVHN_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Digits: the last fifth is a fixed test slice, independent of --seed, so test scores
# from different trials are comparable.
DIGITS_TEST_FRACTION = 0.2


class DataError(RuntimeError):
    """The data cannot be obtained or read; the message says what to do about it."""


class ChecksumError(DataError):
    """A downloaded file does not match its official MD5."""


class ImageBank:
    """Several uint8 image arrays addressed as one, so train+extra need no 1.8 GB concat."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        for p in parts:
            if p.ndim != 4 or p.shape[1:] != IMAGE_SHAPE or p.dtype != np.uint8:
                raise DataError(f"image array has shape {p.shape} {p.dtype}, "
                                f"expected (N, 32, 32, 3) uint8")
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Gather images by global index, keeping the requested order."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.parts) == 1:
            return np.ascontiguousarray(self.parts[0][idx])
        out = np.empty((len(idx), *IMAGE_SHAPE), dtype=np.uint8)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for k, part in enumerate(self.parts):
            sel = which == k
            if sel.any():
                out[sel] = part[idx[sel] - self.offsets[k]]
        return out


@dataclass
class Split:
    """Indices into an ImageBank with their labels (0-9)."""

    images: ImageBank
    labels: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class Dataset:
    """Loaded once, reusable across trials with different hyperparameters."""

    name: str
    train: Split
    val: Split
    test: Split | None


def preprocess(batch: np.ndarray, grayscale: bool) -> np.ndarray:
    """uint8 (B,32,32,3) -> float32, optionally grayscale, each image standardized.

    Matches tf.image.per_image_standardization: (x - mean) / max(std, 1/sqrt(n)),
    so a constant image gives zeros instead of a division by zero.
    """
    x = batch.astype(np.float32)
    if grayscale:
        x = (x @ _GRAY_WEIGHTS)[..., None]
    n = x[0].size
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.maximum(std, np.float32(1.0 / np.sqrt(n)))


def batches(split: Split, batch_size: int, grayscale: bool,
            rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Preprocessed (x, y) batches; shuffled when an rng is given."""
    order = split.index if rng is None else rng.permutation(split.index)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield preprocess(split.images.take(idx), grayscale), split.labels[idx]


# ---------------------------------------------------------------- splitting


def seeded_split(n: int, val_fraction: float, seed: int,
                 max_train: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays: a seeded permutation, the first val_fraction is validation.

    With max_train, training is capped and validation is capped in proportion (a prefix
    of the full validation set), so quick runs keep the 80/20 ratio and stay quick.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(n * val_fraction)
    if n_val < 1 or n_val >= n:
        raise DataError(f"cannot split {n} images with val_fraction={val_fraction}")
    val, train = perm[:n_val], perm[n_val:]
    if max_train is not None and max_train < len(train):
        train = train[:max_train]
        val = val[:max(1, round(max_train * val_fraction / (1.0 - val_fraction)))]
    return np.sort(train), np.sort(val)


# ---------------------------------------------------------------- SVHN files


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Streaming MD5, so a 1.3 GB file never sits in memory twice."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _download_lock(path: Path) -> Iterator[None]:
    """Serialize downloads of one file between trials sharing the cache (best effort).

    Correctness does not depend on it (the rename is atomic); it only avoids N trials
    fetching the same 1.3 GB at once. Filesystems without flock just skip locking.
    """
    try:
        import fcntl

        fh = open(path.with_name(f".{path.name}.lock"), "a+b")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()


def download(name: str, data_dir: Path, base_url: str | None = None,
             timeout: float = 60.0) -> Path:
    """Fetch one official file into data_dir: temp file, MD5 check, then atomic rename."""
    if name not in SVHN_MD5:
        raise DataError(f"unknown SVHN file {name!r}")
    base = base_url or os.environ.get(SVHN_URL_ENV) or SVHN_URL
    url = base.rstrip("/") + "/" + name
    target = data_dir / name
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create SVHN directory {data_dir}: {err}") from err
    with _download_lock(target):
        if target.exists():  # another trial finished it while we waited
            return target
        log.warning("downloading %s -> %s", url, target)
        fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            h = hashlib.md5()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as rsp:
                while block := rsp.read(1 << 20):
                    h.update(block)
                    out.write(block)
            digest = h.hexdigest()
            if digest != SVHN_MD5[name]:
                raise ChecksumError(f"{url}: MD5 {digest} does not match the official "
                                    f"{SVHN_MD5[name]}; the download was discarded")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise DataError(
                f"cannot download {url} ({err}); without network access place the official "
                f"{name} in {data_dir} (the --data_dir volume) or use --dataset=digits") from err
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return target


def load_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One format-2 file -> (images (N,32,32,3) uint8 view, labels (N,) uint8 with 10 -> 0).

    MATLAB stores X as 32x32x3xN column-major, so each image is contiguous and the
    transpose to (N,32,32,3) is a view, not a copy.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as err:  # scipy raises several types for truncated/corrupt files
        raise DataError(f"cannot read {path}: {err}") from err
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: not an SVHN format-2 file (needs X and y)")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != IMAGE_SHAPE or x.shape[3] != len(y):
        raise DataError(f"{path}: X has shape {x.shape} for {len(y)} labels, "
                        f"expected (32, 32, 3, N)")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: labels must be 1..10, found {y.min()}..{y.max()}")
    labels = (y % 10).astype(np.uint8)
    return x.astype(np.uint8, copy=False).transpose(3, 0, 1, 2), labels


def _svhn_file(name: str, data_dir: Path, allow_download: bool,
               required: bool) -> Path | None:
    path = data_dir / name
    if path.exists():
        return path
    if allow_download:
        return download(name, data_dir)
    if required:
        raise DataError(f"{path} is missing and --download is off; place the official "
                        f"file there or pass --download=true")
    log.warning("%s is missing and --download is off: training on train_32x32.mat only",
                path)
    return None


def load_svhn(cfg: TrainConfig) -> Dataset:
    """train(+extra) split seeded 80/20 into train/val; test only when asked for."""
    data_dir = expand_path(cfg.data_dir)
    parts, labels = [], []
    for name, required in (("train_32x32.mat", True), ("extra_32x32.mat", False)):
        path = _svhn_file(name, data_dir, cfg.download, required)
        if path is not None:
            x, y = load_mat(path)
            parts.append(x)
            labels.append(y)
    bank = ImageBank(parts)
    all_labels = np.concatenate(labels)
    train_idx, val_idx = seeded_split(len(bank), cfg.val_fraction, cfg.seed,
                                      cfg.max_train_images)
    test = None
    if cfg.test:
        tx, ty = load_mat(_svhn_file("test_32x32.mat", data_dir, cfg.download, True))
        test = Split(ImageBank([tx]), ty, np.arange(len(ty)))
    return Dataset("svhn", Split(bank, all_labels, train_idx),
                   Split(bank, all_labels, val_idx), test)


# ---------------------------------------------------------------- digits


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits (0-16) as SVHN-shaped uint8 (N,32,32,3): 4x upsampled, 0-255."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    small = d.images.astype(np.float32) * (255.0 / 16.0)
    # Bilinear 4x upsampling: smoother strokes than pixel replication for 3x3..10x10 kernels.
    big = zoom(small, (1, 4, 4), order=1, grid_mode=True, mode="nearest")
    big = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    return np.repeat(big[..., None], 3, axis=3), d.target.astype(np.uint8)


def load_digits(cfg: TrainConfig) -> Dataset:
    """Fixed last-20% test slice; the rest seeded-split into train/val."""
    x, y = digits_images()
    n_test = round(len(y) * DIGITS_TEST_FRACTION)
    n_rest = len(y) - n_test
    bank = ImageBank([x])
    train_idx, val_idx = seeded_split(n_rest, cfg.val_fraction, cfg.seed, cfg.max_train_images)
    test = Split(bank, y, np.arange(n_rest, len(y))) if cfg.test else None
    return Dataset("digits", Split(bank, y, train_idx), Split(bank, y, val_idx), test)


def load(cfg: TrainConfig) -> Dataset:
    """Load the configured data set once; pass it to train.run for many trials."""
    if cfg.dataset == "svhn":
        return load_svhn(cfg)
    if cfg.dataset == "digits":
        return load_digits(cfg)
    raise DataError(f"unknown dataset {cfg.dataset!r}")
