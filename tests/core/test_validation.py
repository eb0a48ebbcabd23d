"""Every bad manifest is rejected with a message that names the field and says why."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api import InvalidSpec, load_experiment
from kubetune.cli import main

from .manifests import document

Doc = dict[str, Any]


def _params(doc: Doc) -> list[dict[str, Any]]:
    return doc["spec"]["parameters"]


def _container(doc: Doc) -> dict[str, Any]:
    return doc["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]


def _pod_spec(doc: Doc) -> dict[str, Any]:
    return doc["spec"]["trialTemplate"]["spec"]["template"]["spec"]


# (id, change to a valid document, field path, substring of the reason)
CASES: list[tuple[str, Callable[[Doc], Any], str, str]] = [
    ("min-above-max", lambda d: _params(d)[1].update(min=1.0, max=0.5),
     "spec.parameters[1].min", "must be less than max"),
    ("min-equals-max", lambda d: _params(d)[2].update(min=5, max=5),
     "spec.parameters[2].min", "must be less than max"),
    ("log-scale-min-zero", lambda d: _params(d)[0].update(min=0.0),
     "spec.parameters[0].min", "log scale needs min > 0"),
    ("log-scale-min-negative", lambda d: _params(d)[0].update(min=-1.0),
     "spec.parameters[0].min", "log scale needs min > 0"),
    ("int-min-not-integer", lambda d: _params(d)[2].update(min=3.5),
     "spec.parameters[2].min", "integer bounds"),
    ("int-max-not-integer", lambda d: _params(d)[2].update(max=9.25),
     "spec.parameters[2].max", "integer bounds"),
    ("categorical-empty", lambda d: _params(d)[3].update(values=[]),
     "spec.parameters[3].values", "at least one value"),
    ("categorical-no-values", lambda d: _params(d)[3].pop("values"),
     "spec.parameters[3].values", "at least one value"),
    ("categorical-duplicate", lambda d: _params(d)[3].update(values=["adam", "sgd", "adam"]),
     "spec.parameters[3].values", "duplicate value 'adam'"),
    ("categorical-with-min", lambda d: _params(d)[3].update(min=0),
     "spec.parameters[3].min", "not allowed for a categorical"),
    ("categorical-log-scale", lambda d: _params(d)[3].update(scale="log"),
     "spec.parameters[3].scale", "log scale does not apply"),
    ("values-on-double", lambda d: _params(d)[1].update(values=[0.5, 0.9]),
     "spec.parameters[1].values", "only categorical parameters take values"),
    ("double-without-max", lambda d: _params(d)[1].pop("max"),
     "spec.parameters[1].max", "required for a double parameter"),
    ("bound-not-finite", lambda d: _params(d)[1].update(max=float("inf")),
     "spec.parameters[1].max", "finite"),
    ("duplicate-name", lambda d: _params(d).append(
        {"name": "momentum", "type": "double", "min": 0.0, "max": 1.0}),
     "spec.parameters[4].name", "duplicate name 'momentum'"),
    ("name-starts-with-digit", lambda d: _params(d)[1].update(name="2momentum"),
     "spec.parameters[1].name", "must start with a letter"),
    ("name-with-dash", lambda d: _params(d)[0].update(name="learning-rate"),
     "spec.parameters[0].name", "letters, digits and underscores"),
    ("name-with-equals", lambda d: _params(d)[0].update(name="lr=1"),
     "spec.parameters[0].name", "letters, digits and underscores"),
    ("unknown-parameter-type", lambda d: _params(d)[0].update(type="float"),
     "spec.parameters[0].type", "'double', 'int' or 'categorical'"),
    ("unknown-parameter-field", lambda d: _params(d)[1].update(step=0.1),
     "spec.parameters[1].step", "unknown field"),
    ("no-parameters", lambda d: d["spec"].update(parameters=[]),
     "spec.parameters", "at least 1 item"),
    ("parameters-missing", lambda d: d["spec"].pop("parameters"),
     "spec.parameters", "required"),
    ("parallelism-zero", lambda d: d["spec"]["budget"].update(parallelism=0),
     "spec.budget.parallelism", "greater than or equal to 1"),
    ("max-trials-zero", lambda d: d["spec"]["budget"].update(maxTrials=0),
     "spec.budget.maxTrials", "greater than or equal to 1"),
    ("max-trials-missing", lambda d: d["spec"]["budget"].pop("maxTrials"),
     "spec.budget.maxTrials", "required"),
    ("max-failed-negative", lambda d: d["spec"]["budget"].update(maxFailedTrials=-1),
     "spec.budget.maxFailedTrials", "greater than or equal to 0"),
    ("max-cost-negative", lambda d: d["spec"]["budget"].update(maxCost=-5),
     "spec.budget.maxCost", "greater than or equal to 0"),
    ("price-negative", lambda d: d["spec"]["cost"].update(pricePerHour=-2.6),
     "spec.cost.pricePerHour", "greater than or equal to 0"),
    ("price-not-finite", lambda d: d["spec"]["cost"].update(pricePerHour=float("inf")),
     "spec.cost.pricePerHour", "finite"),
    ("unknown-algorithm", lambda d: d["spec"]["algorithm"].update(name="tpe"),
     "spec.algorithm.name", "'gp' or 'random'"),
    ("unknown-gp-setting", lambda d: d["spec"]["algorithm"].update(gp={"foo": 1}),
     "spec.algorithm.gp.foo", "unknown field"),
    ("unknown-algorithm-setting", lambda d: d["spec"]["algorithm"].update(restarts=3),
     "spec.algorithm.restarts", "unknown field"),
    ("unknown-acquisition", lambda d: d["spec"]["algorithm"].update(gp={"acquisition": "ucb"}),
     "spec.algorithm.gp.acquisition", "'ei', 'pi' or 'lcb'"),
    ("initial-points-zero", lambda d: d["spec"]["algorithm"].update(initialPoints=0),
     "spec.algorithm.initialPoints", "greater than or equal to 1"),
    ("metric-empty", lambda d: d["spec"]["objective"].update(metric=""),
     "spec.objective.metric", "at least 1 character"),
    ("metric-whitespace", lambda d: d["spec"]["objective"].update(metric="   "),
     "spec.objective.metric", "must not be empty"),
    ("unknown-goal", lambda d: d["spec"]["objective"].update(goal="max"),
     "spec.objective.goal", "'maximize' or 'minimize'"),
    ("target-not-finite", lambda d: d["spec"]["objective"].update(target=float("nan")),
     "spec.objective.target", "finite"),
    ("no-containers", lambda d: _pod_spec(d).update(containers=[]),
     "spec.trialTemplate.spec.template.spec.containers", "at least one container"),
    ("containers-missing", lambda d: _pod_spec(d).pop("containers"),
     "spec.trialTemplate.spec.template.spec.containers", "at least one container"),
    ("no-pod-template", lambda d: d["spec"]["trialTemplate"]["spec"].pop("template"),
     "spec.trialTemplate.spec.template", "pod template"),
    ("container-without-image", lambda d: _container(d).pop("image"),
     "spec.trialTemplate.spec.template.spec.containers[0].image", "required"),
    ("args-not-strings", lambda d: _container(d).update(args=["--epochs", 4]),
     "spec.trialTemplate.spec.template.spec.containers[0].args", "list of strings"),
    ("trial-template-missing", lambda d: d["spec"].pop("trialTemplate"),
     "spec.trialTemplate", "required"),
    ("timeout-words", lambda d: d["spec"]["budget"].update(trialTimeout="ten minutes"),
     "spec.budget.trialTimeout", "duration such as 30m"),
    ("timeout-empty", lambda d: d["spec"]["budget"].update(trialTimeout=""),
     "spec.budget.trialTimeout", "duration such as 30m"),
    ("timeout-zero", lambda d: d["spec"]["budget"].update(trialTimeout=0),
     "spec.budget.trialTimeout", "must be positive"),
    ("timeout-zero-duration", lambda d: d["spec"]["budget"].update(trialTimeout="0m"),
     "spec.budget.trialTimeout", "must be positive"),
    ("timeout-negative", lambda d: d["spec"]["budget"].update(trialTimeout=-30),
     "spec.budget.trialTimeout", "must be positive"),
    ("timeout-fractional", lambda d: d["spec"]["budget"].update(trialTimeout=1.5),
     "spec.budget.trialTimeout", "fractional part"),
    ("wrong-api-version", lambda d: d.update(apiVersion="kubetune.io/v1"),
     "apiVersion", "must be kubetune.io/v1alpha1"),
    ("wrong-kind", lambda d: d.update(kind="Experiment"),
     "kind", "must be TuningExperiment"),
    ("name-uppercase", lambda d: d["metadata"].update(name="Digits_Quick"),
     "metadata.name", "DNS label"),
    ("name-too-long", lambda d: d["metadata"].update(name="a" * 53),
     "metadata.name", "at most 52 characters"),
    ("name-trailing-dash", lambda d: d["metadata"].update(name="digits-"),
     "metadata.name", "DNS label"),
    ("name-missing", lambda d: d.pop("metadata"),
     "metadata.name", "required"),
    ("spec-missing", lambda d: d.pop("spec"),
     "spec", "required"),
]


def _problems(doc: Doc) -> list[tuple[str, str]]:
    with pytest.raises(InvalidSpec) as caught:
        load_experiment(doc)
    return [(p.field, p.reason) for p in caught.value.problems]


@pytest.mark.parametrize(("change", "field", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_manifest_names_field_and_reason(
    change: Callable[[Doc], Any], field: str, reason: str
) -> None:
    doc = document()
    change(doc)
    problems = _problems(doc)
    fields = [f for f, _ in problems]
    assert field in fields, f"expected a problem at {field}, got {problems}"
    reasons = [r for f, r in problems if f == field]
    assert any(reason in r for r in reasons), f"{field}: expected {reason!r} in {reasons}"
    # only the field that was broken is blamed
    assert set(fields) == {field}, problems


def test_the_base_document_is_valid() -> None:
    experiment = load_experiment(document())
    assert experiment.name == "test-experiment"
    assert [p.name for p in experiment.spec.parameters] == [
        "learning_rate", "momentum", "conv1_width", "optimizer"]


def test_the_message_reads_field_colon_reason() -> None:
    doc = document()
    _params(doc)[1].update(min=2.0)
    with pytest.raises(InvalidSpec) as caught:
        load_experiment(doc)
    assert str(caught.value) == "spec.parameters[1].min: must be less than max (min=2, max=1)"


def test_every_problem_is_reported_at_once() -> None:
    doc = document()
    _params(doc)[0].update(min=0.0)
    doc["spec"]["budget"].update(parallelism=0)
    doc["kind"] = "Job"
    fields = {f for f, _ in _problems(doc)}
    assert fields == {"spec.parameters[0].min", "spec.budget.parallelism", "kind"}


@pytest.mark.parametrize(("timeout", "seconds"), [(90, 90), ("90", 90), ("30m", 1800),
                                                  ("1h30m", 5400), ("2h", 7200), ("45s", 45)])
def test_trial_timeout_forms(timeout: int | str, seconds: int) -> None:
    doc = document()
    doc["spec"]["budget"]["trialTimeout"] = timeout
    assert load_experiment(doc).spec.budget.trial_timeout_seconds == seconds


def test_mixed_categorical_values_are_distinct_choices() -> None:
    doc = document()
    _params(doc)[3]["values"] = ["1", 1, 1.5, True]
    spec = load_experiment(doc).spec
    assert spec.parameters[3].values == ["1", 1, 1.5, True]
    assert [type(v) for v in spec.parameters[3].values] == [str, int, float, bool]


def _write(tmp_path: Path, doc: Doc) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_validate_cli_exits_2_naming_the_field(tmp_path: Path) -> None:
    doc = document()
    _params(doc)[2].update(min=12)
    doc["spec"]["algorithm"]["gp"] = {"foo": 1}
    path = _write(tmp_path, doc)
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "validate", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done
    output = done.stdout + done.stderr
    assert "spec.parameters[2].min" in output
    assert "must be less than max" in output
    assert "spec.algorithm.gp.foo" in output


def test_validate_cli_accepts_a_good_manifest(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(_write(tmp_path, document()))]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_cli_rejects_two_documents(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(document()) + "---\n" + yaml.safe_dump(document()))
    with pytest.raises(SystemExit) as caught:
        main(["validate", str(path)])
    assert caught.value.code == 2
    assert "exactly one TuningExperiment" in capsys.readouterr().err


def test_validate_cli_rejects_broken_yaml(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("spec: [unclosed\n")
    with pytest.raises(SystemExit) as caught:
        main(["validate", str(path)])
    assert caught.value.code == 2
    assert "cannot read" in capsys.readouterr().err


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_experiments_are_valid() -> None:
    checked = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "TuningExperiment":
                load_experiment(doc)
                checked.append(path.name)
    assert {"digits-quick.yaml", "svhn-gp.yaml", "svhn-random.yaml"} <= set(checked)
