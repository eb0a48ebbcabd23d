"""``python -m kubetune_trainer``: same as the ``kubetune-trainer`` console script."""

import sys

from kubetune_trainer.cli import main

sys.exit(main())
