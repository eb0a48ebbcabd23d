"""SVHN .mat loading, label mapping, the seeded split, downloads, preprocessing, digits.

No TensorFlow here: these are fast.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from kubetune_trainer import data
from kubetune_trainer.config import TrainConfig
from tests.trainer.trainer_testdata import make_svhn_mat


def svhn_cfg(d: Path, **kw: object) -> TrainConfig:
    return TrainConfig(dataset="svhn", data_dir=str(d), download=False, **kw)


def test_load_mat_layout_and_label_10_is_zero(tmp_path: Path) -> None:
    x, y = make_svhn_mat(tmp_path / "train_32x32.mat", 23, 0)
    images, labels = data.load_mat(tmp_path / "train_32x32.mat")
    assert images.shape == (23, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.uint8 and labels.shape == (23,)
    for i in (0, 9, 22):
        assert np.array_equal(images[i], x[:, :, :, i])
    assert set(labels.tolist()) == set(range(10))
    assert labels[y[:, 0] == 10].tolist() == [0, 0]  # labels 10 -> digit 0
    assert np.array_equal(labels[y[:, 0] != 10], y[y[:, 0] != 10, 0])


def test_load_mat_rejects_wrong_layout(tmp_path: Path) -> None:
    from scipy.io import savemat

    bad = tmp_path / "train_32x32.mat"
    savemat(bad, {"X": np.zeros((5, 32, 32, 3), np.uint8), "y": np.ones((5, 1), np.uint8)})
    with pytest.raises(data.DataError, match="expected"):
        data.load_mat(bad)
    bad.write_bytes(b"not a mat file")
    with pytest.raises(data.DataError, match="cannot read"):
        data.load_mat(bad)


def test_seeded_split_is_deterministic_disjoint_and_80_20(svhn_dir: Path) -> None:
    ds = data.load(svhn_cfg(svhn_dir))
    again = data.load(svhn_cfg(svhn_dir))
    other = data.load(svhn_cfg(svhn_dir, seed=7))
    assert len(ds.train.images) == 80  # train (50) + extra (30)
    assert (len(ds.train), len(ds.val)) == (64, 16)
    assert np.array_equal(ds.train.index, again.train.index)
    assert np.array_equal(ds.val.index, again.val.index)
    assert not np.array_equal(ds.val.index, other.val.index)
    assert not set(ds.train.index) & set(ds.val.index)
    assert set(ds.train.index) | set(ds.val.index) == set(range(80))
    assert ds.test is None


def test_train_and_extra_images_keep_their_labels(svhn_dir: Path) -> None:
    x_tr, y_tr = make_svhn_mat(svhn_dir / "train_32x32.mat", 50, 1)
    x_ex, y_ex = make_svhn_mat(svhn_dir / "extra_32x32.mat", 30, 2)
    ds = data.load(svhn_cfg(svhn_dir))
    idx = np.array([0, 49, 50, 79, 3, 60])
    got = ds.train.images.take(idx)
    want = [x_tr[..., 0], x_tr[..., 49], x_ex[..., 0], x_ex[..., 29], x_tr[..., 3], x_ex[..., 10]]
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
    all_y = np.concatenate([y_tr[:, 0], y_ex[:, 0]]) % 10
    assert np.array_equal(ds.train.labels, all_y)


def test_max_train_images_caps_train_and_val_in_proportion(svhn_dir: Path) -> None:
    full = data.load(svhn_cfg(svhn_dir))
    ds = data.load(svhn_cfg(svhn_dir, max_train_images=20))
    assert (len(ds.train), len(ds.val)) == (20, 5)
    assert set(ds.val.index) <= set(full.val.index)


def test_test_set_is_scored_only_when_asked(svhn_dir: Path) -> None:
    ds = data.load(svhn_cfg(svhn_dir, test=True))
    assert ds.test is not None and len(ds.test) == 20
    assert ds.test.labels[9] == 0  # tenth image has label 10


def test_missing_extra_warns_missing_train_fails(svhn_dir: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    (svhn_dir / "extra_32x32.mat").unlink()
    with caplog.at_level(logging.WARNING, logger="kubetune_trainer"):
        ds = data.load(svhn_cfg(svhn_dir))
    assert len(ds.train) + len(ds.val) == 50
    assert "extra_32x32.mat is missing" in caplog.text
    (svhn_dir / "train_32x32.mat").unlink()
    with pytest.raises(data.DataError, match=r"train_32x32\.mat is missing"):
        data.load(svhn_cfg(svhn_dir))


def test_download_over_http_verifies_md5(http_dir: tuple[Path, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    served, url = http_dir
    make_svhn_mat(served / "train_32x32.mat", 40, 5)
    cache = tmp_path / "cache"
    monkeypatch.setenv(data.SVHN_URL_ENV, url)

    # The tiny file is not the official one: its MD5 does not match, nothing is kept.
    with pytest.raises(data.ChecksumError, match="does not match"):
        data.download("train_32x32.mat", cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []

    # With its real MD5 registered, the same download is accepted and loads.
    digest = hashlib.md5((served / "train_32x32.mat").read_bytes()).hexdigest()
    monkeypatch.setitem(data.SVHN_MD5, "train_32x32.mat", digest)
    assert data.download("train_32x32.mat", cache) == cache / "train_32x32.mat"
    assert (cache / "train_32x32.mat").read_bytes() == (served / "train_32x32.mat").read_bytes()
    images, _ = data.load_mat(cache / "train_32x32.mat")
    assert len(images) == 40
    # --download on and extra not served (404): an error naming the file, not a silent skip.
    with pytest.raises(data.DataError, match=r"extra_32x32\.mat"):
        data.load(TrainConfig(dataset="svhn", data_dir=str(cache), download=True))
    assert not list(cache.glob(".*.part"))


def test_download_corrupted_file_is_rejected_by_checksum(
        http_dir: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served, url = http_dir
    make_svhn_mat(served / "test_32x32.mat", 10, 6)
    good = (served / "test_32x32.mat").read_bytes()
    monkeypatch.setitem(data.SVHN_MD5, "test_32x32.mat", hashlib.md5(good).hexdigest())
    (served / "test_32x32.mat").write_bytes(good[:-10] + b"corrupted!")
    cache = tmp_path / "cache"
    with pytest.raises(data.ChecksumError):
        data.download("test_32x32.mat", cache, base_url=url)
    assert not (cache / "test_32x32.mat").exists()
    (served / "test_32x32.mat").write_bytes(good)
    assert data.download("test_32x32.mat", cache, base_url=url).read_bytes() == good


def test_offline_download_gives_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(data.DataError, match=r"cannot download .*--dataset=digits"):
        data.download("train_32x32.mat", tmp_path / "c", base_url=f"http://127.0.0.1:{port}/")


def test_preprocess_standardizes_each_image() -> None:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    batch[3] = 77  # constant image: zeros, not a division by zero
    gray = data.preprocess(batch, grayscale=True)
    rgb = data.preprocess(batch, grayscale=False)
    assert gray.shape == (4, 32, 32, 1) and rgb.shape == (4, 32, 32, 3)
    assert gray.dtype == np.float32
    for x in (gray, rgb):
        np.testing.assert_allclose(x[:3].mean(axis=(1, 2, 3)), 0, atol=1e-4)
        np.testing.assert_allclose(x[:3].std(axis=(1, 2, 3)), 1, atol=1e-3)
        assert np.all(x[3] == 0)


def test_digits_shape_split_and_fixed_test_slice() -> None:
    cfg = TrainConfig(dataset="digits", test=True)
    ds = data.load(cfg)
    ds7 = data.load(TrainConfig(dataset="digits", test=True, seed=7))
    img = ds.train.images.take(np.array([0]))
    assert img.shape == (1, 32, 32, 3) and img.dtype == np.uint8
    assert img.max() > 200  # 0-16 scaled to 0-255
    assert np.array_equal(img[..., 0], img[..., 2])
    assert ds.test is not None and ds7.test is not None
    assert len(ds.test) == 359 and np.array_equal(ds.test.index, ds7.test.index)
    assert (len(ds.train), len(ds.val)) == (1150, 288)
    assert not set(ds.test.index) & (set(ds.train.index) | set(ds.val.index))
    assert not np.array_equal(ds.val.index, ds7.val.index)


def test_batches_cover_split_once_and_shuffle_with_rng() -> None:
    ds = data.load(TrainConfig(dataset="digits", max_train_images=100))
    seen = [y for _, y in data.batches(ds.train, 32, True)]
    assert [len(y) for y in seen] == [32, 32, 32, 4]
    rng_a = [y for _, y in data.batches(ds.train, 100, True, np.random.default_rng(1))]
    rng_b = [y for _, y in data.batches(ds.train, 100, True, np.random.default_rng(1))]
    assert np.array_equal(rng_a[0], rng_b[0])
    assert sorted(rng_a[0].tolist()) == sorted(np.concatenate(seen).tolist())
