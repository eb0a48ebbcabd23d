"""kubetune's CNN trainer: one hyperparameter trial, reported as one JSON object.

Importing this package (or ``config``/``data``) does not import TensorFlow, so flag
errors and ``--help`` are instant; ``train.run`` imports it on first use.
"""

__version__ = "0.1.0"
