"""Shared fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_threaded_blas() -> Iterator[None]:
    """The GP's matrices are tiny: with two BLAS threads on a busy 2-core machine the
    threads fight for the cores and each suggestion gets several times slower."""
    with threadpool_limits(limits=1):
        yield
