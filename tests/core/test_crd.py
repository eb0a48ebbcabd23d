"""The CRD generated from the models: checked in, described, structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import ExperimentStatus
from kubetune.cli import main
from kubetune.crd import crd, crd_yaml

CHECKED_IN = Path(__file__).resolve().parents[2] / "crds" / "tuningexperiments.kubetune.io.yaml"


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return crd()


@pytest.fixture(scope="module")
def schema(generated: dict[str, Any]) -> dict[str, Any]:
    return generated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_checked_in_crd_matches_the_models() -> None:
    assert CHECKED_IN.exists(), f"{CHECKED_IN} is missing: run `make crd`"
    assert CHECKED_IN.read_text() == crd_yaml(), (
        f"{CHECKED_IN.relative_to(CHECKED_IN.parents[1])} is out of date with "
        "operator/kubetune/api: run `make crd` and commit the result"
    )


def test_crd_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "crd.yaml"
    copy.write_text(crd_yaml())
    assert main(["crd", "--check", str(copy)]) == 0
    copy.write_text(crd_yaml().replace("Dollars", "Euros", 1))
    assert main(["crd", "--check", str(copy)]) == 1
    assert "make crd" in capsys.readouterr().err
    assert main(["crd", "--check", str(tmp_path / "missing.yaml")]) == 1


def test_crd_command_prints_the_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == crd_yaml()


def test_names(generated: dict[str, Any]) -> None:
    assert generated["apiVersion"] == "apiextensions.k8s.io/v1"
    assert generated["kind"] == "CustomResourceDefinition"
    assert generated["metadata"]["name"] == "tuningexperiments.kubetune.io"
    spec = generated["spec"]
    assert spec["group"] == "kubetune.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "TuningExperiment"
    assert spec["names"]["plural"] == "tuningexperiments"
    assert spec["names"]["singular"] == "tuningexperiment"
    assert spec["names"]["shortNames"] == ["tex"]
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns(generated: dict[str, Any]) -> None:
    columns = generated["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"]) for c in columns] == [
        ("Status", ".status.phase"),
        ("Trials", ".status.progress"),
        ("Best", ".status.best.value"),
        ("Cost", ".status.totalCost"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    # the paths exist in the status model
    status = ExperimentStatus.model_json_schema(by_alias=True)["properties"]
    assert {"phase", "progress", "best", "totalCost"} <= set(status)


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below (and including) ``node``, with its path."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    # the root's metadata is the one exception: the API server allows nothing but its type
    assert schema["properties"]["metadata"] == {"type": "object"} or \
        schema["properties"]["metadata"].get("description")
    missing = [path for path, node in _nodes(schema)
               if path.count(".") and not path.endswith(("[]", "{}")) and path != ".metadata"
               and not (node.get("description") or "").strip()]
    assert len(list(_nodes(schema))) > 80
    assert not missing, f"properties without a description: {missing}"


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    forbidden = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "title", "const",
                 "discriminator", "prefixItems"}
    assert not forbidden & set(_keys(schema)), forbidden & set(_keys(schema))
    untyped = [path or "(root)" for path, node in _nodes(schema)
               if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields")
               and not node.get("x-kubernetes-int-or-string")]
    assert not untyped, f"schema nodes without a type: {untyped}"
    for path, node in _nodes(schema):
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), path
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(key, False), bool), path
        if "default" in node:  # defaults live in the descriptions, the spec stays as written
            pytest.fail(f"{path} has a default")


def test_schema_follows_the_models(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert set(spec["properties"]) == set(ExperimentSpec.model_json_schema(by_alias=True)
                                          ["properties"])
    assert set(spec["required"]) == {"objective", "parameters", "budget", "trialTemplate"}
    parameter = spec["properties"]["parameters"]["items"]
    assert parameter["properties"]["type"]["enum"] == ["double", "int", "categorical"]
    assert parameter["properties"]["scale"]["enum"] == ["linear", "log"]
    assert parameter["properties"]["min"]["nullable"] is True
    assert parameter["x-kubernetes-validations"], "CEL rules for min < max and log scale"
    values = parameter["properties"]["values"]["items"]
    assert values.get("x-kubernetes-preserve-unknown-fields"), "strings or numbers"
    budget = spec["properties"]["budget"]["properties"]
    assert budget["parallelism"]["minimum"] == 1
    assert budget["maxTrials"]["minimum"] == 1
    assert budget["maxFailedTrials"]["minimum"] == 0
    assert budget["trialTimeout"]["x-kubernetes-int-or-string"] is True
    assert spec["properties"]["algorithm"]["properties"]["name"]["enum"] == ["gp", "random"]
    template = spec["properties"]["trialTemplate"]["properties"]["spec"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True
    status = schema["properties"]["status"]["properties"]
    assert set(status) == set(ExperimentStatus.model_json_schema(by_alias=True)["properties"])


def test_defaults_are_in_the_descriptions(schema: dict[str, Any]) -> None:
    budget = schema["properties"]["spec"]["properties"]["budget"]["properties"]
    assert "Default: 1." in budget["parallelism"]["description"]
    assert "Default: 3." in budget["maxFailedTrials"]["description"]


def test_checked_in_file_is_one_yaml_document() -> None:
    docs = list(yaml.safe_load_all(CHECKED_IN.read_text()))
    assert len(docs) == 1
    assert docs[0]["metadata"]["name"] == "tuningexperiments.kubetune.io"
