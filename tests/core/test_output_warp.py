"""The GP's output warps: order-preserving, standardized, and tame on outliers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from kubetune.suggest import gp as gpmod

KINDS = ["none", "yeo-johnson", "copula", "log", "half-rank", "half-rank+yeo-johnson",
         "half-rank+copula"]


def _losses(seed: int = 0) -> np.ndarray:
    """Minimized objective like 1 - accuracy: most trials good, a few diverged."""
    rng = np.random.default_rng(seed)
    good = rng.uniform(0.01, 0.1, 30)
    diverged = rng.uniform(0.85, 0.9, 6)
    return rng.permutation(np.concatenate([good, diverged]))


@pytest.mark.parametrize("kind", KINDS)
def test_every_warp_keeps_the_order_and_standardizes(kind: str) -> None:
    y = _losses()
    w = gpmod.warp(y, kind)
    assert w.shape == y.shape and np.all(np.isfinite(w))
    assert spearmanr(y, w).statistic == pytest.approx(1.0)
    assert np.mean(w) == pytest.approx(0.0, abs=1e-9)
    assert np.std(w) == pytest.approx(1.0, rel=1e-9)


def test_half_rank_keeps_the_better_half_and_pulls_in_the_cliff() -> None:
    y = _losses()
    h = gpmod.half_rank(y)
    median = np.median(y)
    better = y <= median
    np.testing.assert_array_equal(h[better], y[better])
    worse = ~better
    assert np.all(h[worse] > median)
    # Diverged trials sit a few better-half standard deviations out, not tens.
    scale = np.sqrt(np.mean((y[better] - median) ** 2))
    assert (y.max() - median) / scale > 20
    assert (h.max() - median) / scale < 3
    # Ties among the worse half stay tied (ranks are averaged).
    tied = np.concatenate([y, [y.max(), y.max()]])
    ht = gpmod.half_rank(tied)
    assert ht[-1] == ht[-2] == ht[np.argmax(y)]


def test_half_rank_of_constant_or_tiny_inputs_is_finite() -> None:
    for y in (np.full(5, 0.3), np.array([0.2]), np.array([0.1, 0.5])):
        assert np.all(np.isfinite(gpmod.half_rank(y)))
        assert np.all(np.isfinite(gpmod.warp(y, "half-rank+yeo-johnson")))


def test_an_unknown_warp_is_refused() -> None:
    with pytest.raises(ValueError, match="Y_WARP"):
        gpmod.warp(np.arange(5.0), "box-cox")
