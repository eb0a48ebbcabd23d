"""hack/kind-e2e.sh cannot run here (no Docker); check that it is sound and that the
names it relies on are the ones the chart renders for its release."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.helm.chart import CHART_DIR, ROOT, render

SCRIPT = ROOT / "hack" / "kind-e2e.sh"


def test_script_is_strict_bash() -> None:
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert SCRIPT.stat().st_mode & 0o111, "not executable"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_script_builds_from_existing_files() -> None:
    text = SCRIPT.read_text()
    for dockerfile in re.findall(r"docker build -f (\S+)", text):
        assert (ROOT / dockerfile).is_file(), dockerfile
    assert "helm install kubetune helm/kubetune" in text
    assert (CHART_DIR / "Chart.yaml").is_file()
    # the CPU base it swaps in is the trainer Dockerfile's own build argument
    assert "--build-arg \"TF_IMAGE=" in text
    assert "ARG TF_IMAGE=" in (ROOT / "Dockerfile.trainer").read_text()


@pytest.mark.helm
def test_script_names_match_the_chart() -> None:
    """Release "kubetune": the names the script reads back exist, and the images it sets
    are the ones the Deployment and the CPU example use."""
    text = SCRIPT.read_text()
    sets = dict(re.findall(r"--set ([\w.]+)=\"?([^\s\"]+)\"?", text))
    values: dict = {}
    for key, value in sets.items():
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value.replace("$TAG", "e2e")
    out = render(values, release="kubetune", namespace="kubetune-system")
    deployment = out.one("Deployment", "kubetune")
    assert "deployment/kubetune " in text
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "kubetune/operator:e2e"
    assert container["imagePullPolicy"] == "Never"
    examples = out.one("ConfigMap", "kubetune-examples")
    assert "get configmap kubetune-examples" in text
    assert "{.data.digits-cpu\\.yaml}" in text
    experiment = yaml.safe_load(examples["data"]["digits-cpu.yaml"])
    assert experiment["metadata"]["name"] == "digits-cpu"
    assert "get tex digits-cpu" in text
    pod = experiment["spec"]["trialTemplate"]["spec"]["template"]["spec"]
    (trainer,) = pod["containers"]
    assert trainer["image"] == "kubetune/trainer:e2e" and trainer["imagePullPolicy"] == "Never"
    assert "nvidia.com/gpu" not in str(pod)  # kind nodes have no GPU
