"""promtool, for linting the exposition and the dashboard's PromQL: see tests/support/prometheus.py."""

from tests.support.prometheus import promtool

__all__ = ["promtool"]
