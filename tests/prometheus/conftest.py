"""Fixtures for the tests that run a real Prometheus: see tests/support/prometheus.py."""

from tests.support.prometheus import prometheus_server, promtool

__all__ = ["prometheus_server", "promtool"]
