"""Local Kubernetes test infrastructure: a real control plane plus a node agent.

Development and test tooling only; the operator never imports this package.
`cli(argv)` is the entry point behind `kubetune dev-cluster ...` and
`python -m kubetune.devcluster ...`.
"""

from __future__ import annotations

__all__ = ["cli"]


def cli(argv: list[str]) -> int:
    """Run a dev-cluster subcommand (e.g. ["up"]); returns the exit status."""
    from .commands import main  # lazy: keeps `import kubetune.devcluster` cheap

    return main(argv)
