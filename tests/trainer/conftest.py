"""Fixtures for the trainer tests: tiny SVHN files in the exact official format-2 layout."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.trainer_testdata import make_svhn_mat


@pytest.fixture
def svhn_dir(tmp_path: Path) -> Path:
    """A data dir with train (50), extra (30) and test (20) images."""
    d = tmp_path / "svhn"
    d.mkdir()
    make_svhn_mat(d / "train_32x32.mat", 50, 1)
    make_svhn_mat(d / "extra_32x32.mat", 30, 2)
    make_svhn_mat(d / "test_32x32.mat", 20, 3)
    return d


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a directory: (directory, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
