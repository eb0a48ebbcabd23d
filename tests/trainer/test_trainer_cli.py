"""Strict flag parsing, the JSON contract, and real training runs (slow ones marked).

A misspelled hyperparameter must never be silently ignored: the optimizer would learn
from a trial that ran the defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kubetune_trainer import cli
from kubetune_trainer.config import TERMINATION_LOG_ENV, TrainConfig, parse_args

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, tlog: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The console script's code path in a fresh interpreter, as the operator runs it."""
    env = {**os.environ, TERMINATION_LOG_ENV: str(tlog)}
    return subprocess.run([sys.executable, "-m", "kubetune_trainer", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- parsing (fast)


def test_defaults_and_both_spellings() -> None:
    assert parse_args([]) == TrainConfig(termination_log=parse_args([]).termination_log)
    cfg = parse_args(["--learning_rate=0.01", "--conv1-width=7", "--keep-prob", "0.8",
                      "--fc_units=12.0", "--batch_size=1e2", "--dataset=digits"])
    assert (cfg.learning_rate, cfg.conv1_width, cfg.keep_prob) == (0.01, 7, 0.8)
    assert cfg.fc_units == 12 and isinstance(cfg.fc_units, int)
    assert cfg.batch_size == 100 and cfg.dataset == "digits"


@pytest.mark.parametrize(("args", "expected"), [
    ([], True), (["--grayscale"], True), (["--grayscale=false"], False),
    (["--grayscale=0"], False), (["--grayscale=1"], True), (["--grayscale=True"], True),
])
def test_bool_flags(args: list[str], expected: bool) -> None:
    assert parse_args(args).grayscale is expected


@pytest.mark.parametrize(("args", "needle"), [
    (["--learning_rat=0.1"], "--learning_rat"),
    (["--learning=0.1"], "--learning"),  # prefixes are not accepted either
    (["--conv1_width=12.5"], "--conv1_width"),
    (["--conv1_width=abc"], "--conv1_width"),
    (["--grayscale=maybe"], "--grayscale"),
    (["--dataset=mnist"], "--dataset"),
    (["--learning_rate=nan"], "--learning_rate"),
    (["--keep_prob=0"], "--keep_prob"),
    (["--momentum=1.5"], "--momentum"),
    (["--epochs=0"], "--epochs"),
    (["stray"], "stray"),
])
def test_bad_flags_exit_2_naming_the_flag(args: list[str], needle: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    tlog = tmp_path / "termination-log"
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tlog))
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert needle in err
    report = json.loads(tlog.read_text())
    assert report["status"] == "failed" and needle in report["reason"]
    assert last_json(out) == report


def test_misspelled_flag_in_a_real_process(tmp_path: Path) -> None:
    tlog = tmp_path / "tl"
    proc = run_cli("--dataset=digits", "--conv1_widht=5", tlog=tlog, timeout=30)
    assert proc.returncode == 2
    assert "unrecognized arguments: --conv1_widht=5" in proc.stderr
    check = ("import sys; from kubetune_trainer import cli; cli.main(['--x']); "
             "print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          env={**os.environ, TERMINATION_LOG_ENV: str(tlog)}, check=True)
    assert proc.stdout.splitlines()[-1] == "False"  # flag errors never pay for TensorFlow


def test_help_exits_0_and_reports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tmp_path / "tl"))
    assert cli.main(["--help"]) == 0
    out, _ = capsys.readouterr()
    assert "--conv1_width" in out and "--keep-prob" in out
    assert not (tmp_path / "tl").exists()


def test_termination_log_flag_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tmp_path / "env"))
    assert parse_args([]).termination_log == str(tmp_path / "env")
    assert cli.main(["--termination-log", str(tmp_path / "flag"), "--bogus"]) == 2
    assert (tmp_path / "flag").exists() and not (tmp_path / "env").exists()
    monkeypatch.delenv(TERMINATION_LOG_ENV)
    assert parse_args([]).termination_log == "/dev/termination-log"


def test_unwritable_termination_log_only_warns(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cli.emit({"status": "ok"}, str(tmp_path / "missing-dir" / "tl"), sys.stdout)
    out, err = capsys.readouterr()
    assert json.loads(out) == {"status": "ok"} and "cannot write termination log" in err


def test_svhn_offline_fails_with_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    tlog = tmp_path / "tl"
    code = cli.main(["--data_dir", str(tmp_path / "none"), "--download=false",
                     f"--termination_log={tlog}"])
    assert code == 1
    report = json.loads(tlog.read_text())
    assert report["status"] == "failed" and "train_32x32.mat is missing" in report["reason"]


def test_dockerfile_installs_gpu_tensorflow_and_the_same_deps() -> None:
    """The image keeps the base image's GPU `tensorflow`; other deps match pyproject."""
    dockerfile = (REPO / "Dockerfile.trainer").read_text()
    assert "--no-deps /src/trainer" in dockerfile and "tensorflow-cpu" not in dockerfile.split(
        "ARG TF_IMAGE")[1]
    assert 'ENTRYPOINT ["kubetune-trainer"]' in dockerfile and "VOLUME /data/svhn" in dockerfile
    assert "USER 10001:10001" in dockerfile and "COPY trainer/ " in dockerfile
    project = tomllib.loads((REPO / "trainer" / "pyproject.toml").read_text())["project"]
    deps = [d for d in project["dependencies"] if not d.startswith(("tensorflow", "numpy"))]
    for dep in deps:
        assert f'"{dep}"' in dockerfile, f"{dep} missing from Dockerfile.trainer"


# ---------------------------------------------------------------- training (slow)


@pytest.mark.slow
def test_digits_run_writes_json_to_log_and_stdout(tmp_path: Path) -> None:
    tlog = tmp_path / "termination-log"
    proc = run_cli("--dataset=digits", "--epochs=2", "--max_train_images=600", "--test", "--verbose",
                   "--conv1_depth=16.0", "--fc-units=256", "--learning_rate=0.001", tlog=tlog)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(tlog.read_text())
    assert last_json(proc.stdout) == report
    assert proc.stdout.strip().count("\n") == 0  # stdout is the result line only
    assert report["status"] == "ok"
    assert report["epochs"] == 2 and report["train_images"] == 600 and report["val_images"] == 150
    assert report["val_accuracy"] > 0.5 and report["test_accuracy"] > 0.5
    assert report["test_images"] == 359
    assert report["train_seconds"] > 0 and report["images_per_second"] > 0
    assert report["val_loss"] > 0


@pytest.mark.slow
def test_nan_loss_exits_3_with_reason(tmp_path: Path) -> None:
    # Inside the seed's search space: decay (rho) 1.0 never accumulates squared
    # gradients, so RMSProp divides by epsilon alone and the weights blow up.
    tlog = tmp_path / "termination-log"
    proc = run_cli("--dataset=digits", "--learning_rate=1", "--decay=1.0", "--momentum=1.0",
                   "--max_train_images=256", "--epochs=3", tlog=tlog)
    assert proc.returncode == 3, proc.stderr[-3000:]
    report = json.loads(tlog.read_text())
    assert last_json(proc.stdout) == report
    assert report["status"] == "failed"
    assert report["reason"].startswith("NaN loss at epoch 1 batch ")


@pytest.mark.slow
def test_api_reuses_loaded_svhn_data_and_scores_test(svhn_dir: Path) -> None:
    from kubetune_trainer import data, train

    cfg = TrainConfig(dataset="svhn", data_dir=str(svhn_dir), download=False, test=True,
                      fc_units=32, conv1_depth=10, conv2_depth=10, batch_size=16, epochs=1,
                      grayscale=False)
    ds = data.load(cfg)
    first = train.run(cfg, ds)
    again = train.run(cfg, ds)
    other = train.run(TrainConfig(**{**cfg.__dict__, "grayscale": True, "seed": 3}), ds)
    for r in (first, again, other):
        assert r["status"] == "ok", r
        assert (r["train_images"], r["val_images"], r["test_images"]) == (64, 16, 20)
        assert 0 <= r["test_accuracy"] <= 1
    assert first["val_loss"] == pytest.approx(again["val_loss"], rel=1e-4)  # seeded
    with pytest.raises(ValueError, match="digits"):
        train.run(TrainConfig(dataset="digits"), ds)
