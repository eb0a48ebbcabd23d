"""The two Dockerfiles, checked without a Docker engine: entrypoints name installed
console scripts, copied paths exist, users are not root, the operator image carries
no TensorFlow and the trainer image is built on TensorFlow's GPU image."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "Dockerfile.operator"
TRAINER = ROOT / "Dockerfile.trainer"


@dataclass
class Instruction:
    name: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        name, _, args = line.partition(" ")
        out.append(Instruction(name.upper(), args.strip()))
    assert not pending, f"{path.name}: dangling line continuation"
    return out


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), \
        f"{instruction.name} must use the exec (JSON) form: {instruction.args}"
    return value


def last(items: list[Instruction], name: str) -> Instruction:
    found = [i for i in items if i.name == name]
    assert found, f"no {name}"
    return found[-1]


def arg_defaults(items: list[Instruction]) -> dict[str, str]:
    out = {}
    for i in items:
        if i.name == "ARG" and "=" in i.args:
            key, _, value = i.args.partition("=")
            out[key.strip()] = value.strip()
    return out


def base_images(items: list[Instruction]) -> list[str]:
    """Each FROM's image, with ${ARG} defaults substituted."""
    args = arg_defaults(items)
    images = []
    for i in items:
        if i.name == "FROM":
            image = i.args.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image))
    return images


def stage_names(items: list[Instruction]) -> set[str]:
    return {i.args.split()[-1] for i in items
            if i.name == "FROM" and " as " in i.args.lower()}


def console_scripts(pyproject: Path) -> dict[str, str]:
    return tomllib.loads(pyproject.read_text())["project"]["scripts"]


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=lambda p: p.name)
def test_copy_sources_exist(dockerfile: Path) -> None:
    items = instructions(dockerfile)
    stages = stage_names(items)
    copies = [i for i in items if i.name in ("COPY", "ADD")]
    assert copies
    for copy in copies:
        parts = shlex.split(copy.args)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            assert flags[0].split("=", 1)[1] in stages, copy.args
            continue
        *sources, _dest = [p for p in parts if not p.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such path"
            ignored = (ROOT / ".dockerignore").read_text().split()
            assert source.rstrip("/") not in ignored, f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=lambda p: p.name)
def test_runs_as_non_root(dockerfile: Path) -> None:
    items = instructions(dockerfile)
    user = last(items, "USER").args
    uid = user.split(":")[0]
    assert uid not in ("root", "0"), user
    # the final USER comes after the last RUN (nothing re-enables root)
    assert items.index(last(items, "USER")) > items.index(last(items, "RUN"))
    # a numeric UID lets Kubernetes' runAsNonRoot verify it without /etc/passwd
    assert uid.isdigit() and int(uid) >= 1000
    created = re.search(r"useradd[^&]*--uid (\d+)", " ".join(i.args for i in items))
    assert created and created.group(1) == uid


def test_operator_image() -> None:
    items = instructions(OPERATOR)
    images = base_images(items)
    assert images and all(image == "python:3.11-slim" for image in images), images
    entrypoint = exec_form(last(items, "ENTRYPOINT"))
    scripts = console_scripts(ROOT / "operator" / "pyproject.toml")
    assert entrypoint == ["kubetune"] and "kubetune" in scripts
    cmd = exec_form(last(items, "CMD"))
    assert cmd == ["operator"]
    from kubetune.cli import build_parser  # the CMD is a real subcommand

    assert build_parser().parse_args(cmd).command == "operator"
    runs = " ".join(i.args for i in items if i.name == "RUN")
    assert "tensorflow" not in runs.lower()
    assert "/src/operator" in runs and "trainer" not in runs
    assert not any(i.args.split()[0].startswith("trainer") for i in items if i.name == "COPY")


def test_operator_dependencies_do_not_pull_tensorflow() -> None:
    """What `pip install operator/` brings, walked through the installed metadata."""
    seen: set[str] = set()
    todo = ["kubetune"]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    assert "kopf" in seen and "kubernetes" in seen
    assert not {n for n in seen if n.startswith(("tensorflow", "keras", "kubetune-trainer"))}, \
        sorted(seen)


def test_operator_image_matches_the_chart() -> None:
    """The chart runs the image's user, entrypoint and ports as the Dockerfile sets them."""
    items = instructions(OPERATOR)
    uid = int(last(items, "USER").args.split(":")[0])
    values = yaml.safe_load((ROOT / "helm" / "kubetune" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == uid
    exposed = {int(p) for p in last(items, "EXPOSE").args.split()}
    assert exposed == {values["metrics"]["port"], values["operator"]["healthPort"]}
    assert values["image"]["repository"].endswith("/operator")


def test_trainer_image() -> None:
    items = instructions(TRAINER)
    (image,) = base_images(items)
    repository, _, tag = image.partition(":")
    assert repository == "tensorflow/tensorflow" and tag.endswith("-gpu"), image
    entrypoint = exec_form(last(items, "ENTRYPOINT"))
    scripts = console_scripts(ROOT / "trainer" / "pyproject.toml")
    assert entrypoint == ["kubetune-trainer"] and "kubetune-trainer" in scripts
    runs = " ".join(i.args for i in items if i.name == "RUN")
    assert "/src/trainer" in runs
    # the SVHN cache is a volume where the chart and the trainer expect it
    volumes = [v for i in items if i.name == "VOLUME" for v in i.args.split()]
    values = yaml.safe_load((ROOT / "helm" / "kubetune" / "values.yaml").read_text())
    from kubetune_trainer.config import TrainConfig

    assert values["trainer"]["data"]["mountPath"] in volumes
    assert TrainConfig().data_dir == values["trainer"]["data"]["mountPath"]
