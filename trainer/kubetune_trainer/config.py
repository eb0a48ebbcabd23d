"""Trial configuration and its strict command-line parser.

The operator passes every tuned parameter as ``--<name>=<value>``. A misspelled name
silently falling back to a default would make the optimizer learn from a trial that
never ran what it asked for, so unknown flags, prefixes of flags, non-integral ints and
bad booleans/categoricals are all usage errors (exit code 2).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

DATASETS = ("svhn", "digits")
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "KUBETUNE_TERMINATION_LOG"

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one trial needs; defaults are the seed study's CNN."""

    learning_rate: float = 1e-3
    momentum: float = 0.9
    decay: float = 0.9
    conv1_width: int = 5
    conv1_depth: int = 32
    conv2_width: int = 5
    conv2_depth: int = 64
    fc_units: int = 1024
    keep_prob: float = 0.5
    batch_size: int = 64
    epochs: int = 1
    grayscale: bool = True
    dataset: str = "svhn"
    data_dir: str = "/data/svhn"
    download: bool = True
    max_train_images: int | None = None
    test: bool = False
    seed: int = 0
    val_fraction: float = 0.2
    termination_log: str = DEFAULT_TERMINATION_LOG
    verbose: bool = False

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ValueError("; ".join(problems))


def validate(cfg: TrainConfig) -> list[str]:
    """Range checks that argparse types cannot express; messages name the flag."""
    problems: list[str] = []

    def check(ok: bool, name: str, why: str) -> None:
        if not ok:
            problems.append(f"--{name}={getattr(cfg, name)!r}: {why}")

    check(cfg.learning_rate > 0 and math.isfinite(cfg.learning_rate), "learning_rate",
          "must be a positive finite number")
    check(0.0 <= cfg.momentum <= 1.0, "momentum", "must be in [0, 1]")
    check(0.0 <= cfg.decay <= 1.0, "decay", "must be in [0, 1]")
    check(0.0 < cfg.keep_prob <= 1.0, "keep_prob", "must be in (0, 1]")
    for name in ("conv1_width", "conv2_width"):
        check(1 <= getattr(cfg, name) <= 32, name, "must be between 1 and 32")
    for name in ("conv1_depth", "conv2_depth", "fc_units", "batch_size", "epochs"):
        check(getattr(cfg, name) >= 1, name, "must be >= 1")
    check(cfg.max_train_images is None or cfg.max_train_images >= 1, "max_train_images",
          "must be >= 1")
    check(0.0 < cfg.val_fraction < 1.0, "val_fraction", "must be in (0, 1)")
    check(cfg.dataset in DATASETS, "dataset", f"must be one of {', '.join(DATASETS)}")
    return problems


def parse_bool(text: str) -> bool:
    """Booleans as an optimizer or a YAML author might spell them; anything else is an error."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (use true/false/1/0)")


def parse_int(text: str) -> int:
    """Ints, also as integral floats ("12.0"), because optimizers often emit floats."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise argparse.ArgumentTypeError(f"invalid integer {text!r} (not a whole number)")
    return int(value)


def parse_float(text: str) -> float:
    """Finite floats only: a NaN hyperparameter is an optimizer bug, not a trial."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid number {text!r} (not finite)")
    return value


def parse_dataset(text: str) -> str:
    """Categorical with a message that lists the choices."""
    if text not in DATASETS:
        raise argparse.ArgumentTypeError(
            f"invalid dataset {text!r} (choose from {', '.join(DATASETS)})")
    return text


_HELP = {
    "learning_rate": "RMSProp learning rate",
    "momentum": "RMSProp momentum",
    "decay": "RMSProp decay (rho)",
    "conv1_width": "kernel width of the first convolution",
    "conv1_depth": "filters of the first convolution",
    "conv2_width": "kernel width of the second convolution",
    "conv2_depth": "filters of the second convolution",
    "fc_units": "units of the fully connected layer",
    "keep_prob": "dropout KEEP probability (Keras rate = 1 - keep_prob)",
    "batch_size": "mini-batch size",
    "epochs": "passes over the training split",
    "grayscale": "convert to grayscale before per-image standardization",
    "dataset": "svhn (official .mat files) or digits (scikit-learn, offline)",
    "data_dir": "SVHN cache directory holding *_32x32.mat",
    "download": "download missing SVHN files (MD5-verified)",
    "max_train_images": "cap on training images (validation capped in proportion)",
    "test": "also score the held-out test set",
    "seed": "seed for the split, initialization and shuffling",
    "val_fraction": "fraction of train(+extra) held out for validation",
    "termination_log": f"where the JSON result goes (default: ${TERMINATION_LOG_ENV} "
                       f"or {DEFAULT_TERMINATION_LOG})",
    "verbose": "Keras progress output (on stderr)",
}

_TYPES = {int: parse_int, float: parse_float, str: str}


class UsageError(SystemExit):
    """A flag error: exits 2 like argparse, but keeps the message for the JSON report."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises UsageError, so the CLI can report the reason too."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """Every field of TrainConfig becomes ``--name`` and ``--dashed-name``; no abbreviations."""
    parser = _Parser(
        prog="kubetune-trainer",
        description="Train the kubetune CNN once and report one JSON object.",
        allow_abbrev=False,
    )
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        names = [f"--{f.name}"]
        if "_" in f.name:
            names.append(f"--{f.name.replace('_', '-')}")
        default = getattr(defaults, f.name)
        help_text = _HELP[f.name]
        if f.name == "termination_log":
            parser.add_argument(*names, dest=f.name, default=None, metavar="PATH",
                                help=help_text)
        elif f.name == "dataset":
            parser.add_argument(*names, dest=f.name, type=parse_dataset, default=default,
                                metavar="{svhn,digits}", help=f"{help_text} (default {default})")
        elif isinstance(default, bool):
            parser.add_argument(*names, dest=f.name, type=parse_bool, nargs="?", const=True,
                                default=default, metavar="BOOL",
                                help=f"{help_text} (default {str(default).lower()})")
        elif f.name == "max_train_images":
            parser.add_argument(*names, dest=f.name, type=parse_int, default=None,
                                metavar="N", help=help_text)
        else:
            parser.add_argument(*names, dest=f.name, type=_TYPES[type(default)],
                                default=default, help=f"{help_text} (default {default})")
    return parser


def default_termination_log() -> str:
    """The env override lets local runs and tests avoid /dev/termination-log."""
    return os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Parse strictly; exits with code 2 and a message naming the bad flag on any error."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.termination_log is None:
        ns.termination_log = default_termination_log()
    try:
        return TrainConfig(**vars(ns))
    except ValueError as err:
        parser.error(str(err))
        raise  # unreachable: error() exits


def termination_log_from_argv(argv: list[str]) -> str:
    """Best-effort path for reporting a usage error, when full parsing has failed."""
    for i, arg in enumerate(argv):
        for name in ("--termination_log", "--termination-log"):
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
    return default_termination_log()


def expand_path(path: str) -> Path:
    """Paths from flags may use ``~``."""
    return Path(path).expanduser()
