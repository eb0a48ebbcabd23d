"""Rendering helm/kubetune with the real Helm engine (Helm's Go SDK via helm-python-sdk).

Shared by tests/helm and tests/cluster/test_rbac.py. No helm binary is involved:
``helm_python`` binds libhelm_c, so rendering here is exactly what `helm template`
and `helm install` do (values merged with the defaults, values.schema.json
enforced, templates executed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "kubetune"
SCENARIOS = sorted(CHART_DIR.glob("ci/*-values.yaml"))
RELEASE = "kt"
RELEASE_NAMESPACE = "kubetune-system"

Obj = dict[str, Any]


def scenario_values(path: Path) -> Obj:
    return yaml.safe_load(path.read_text()) or {}


@dataclass
class Rendered:
    """The objects of one rendering, and the release notes."""

    objects: list[Obj]
    notes: str
    sources: dict[int, str] = field(default_factory=dict)  # id(obj) -> template path

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Obj:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def source(self, obj: Obj) -> str:
        return self.sources.get(id(obj), "?")

    def yaml(self, objects: Iterable[Obj] | None = None) -> str:
        return yaml.safe_dump_all(list(self.objects if objects is None else objects),
                                  sort_keys=False)


def load_chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def render(values: Obj | None = None, *, release: str = RELEASE,
           namespace: str = RELEASE_NAMESPACE, chart: helm.Chart | None = None) -> Rendered:
    """Render the chart as `helm install --dry-run` would (schema checked, defaults merged)."""
    own = chart is None
    chart = chart or load_chart()
    try:
        manifests = chart.render(values or {}, name=release, namespace=namespace,
                                 is_install=True)
    finally:
        if own:
            chart.close()
    objects: list[Obj] = []
    sources: dict[int, str] = {}
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert isinstance(doc, dict) and "kind" in doc, f"{path}: not an object: {doc!r}"
            objects.append(doc)
            sources[id(doc)] = path
    return Rendered(objects, notes, sources)


def pod_specs(objects: Iterable[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) for every workload object that runs pods."""
    for obj in objects:
        kind = obj["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            yield obj, obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield obj, obj["spec"]
