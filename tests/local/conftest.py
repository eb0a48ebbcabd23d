"""Fixtures of the ``kubetune run`` tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from .fake import FAKE_TRAINER, Fake


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    record = tmp_path / "record"
    (record / "calls").mkdir(parents=True)
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return Fake(tmp_path, script, record)


@pytest.fixture(autouse=True)
def _single_threaded_blas() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield
