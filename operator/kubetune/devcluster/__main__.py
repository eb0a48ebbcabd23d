"""`python -m kubetune.devcluster up`."""

import sys

from . import cli

raise SystemExit(cli(sys.argv[1:]))
