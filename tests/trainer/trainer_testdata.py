"""Helpers shared by the trainer tests (a unique module name: tests/ has other packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat


def make_svhn_mat(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write X uint8 (32,32,3,N) and y uint8 (N,1) with labels 1..10 (10 = digit 0).

    Each image is filled with a value derived from its index, so tests can tell which
    original image ended up where. Returns (X, y) as written.
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    x[0, 0, 0, :] = np.arange(n) % 256  # identity marker
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # includes 10
    savemat(path, {"X": x, "y": y})
    return x, y
