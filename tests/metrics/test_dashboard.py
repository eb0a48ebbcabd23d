"""The Grafana dashboard, statically: variables, datasource, PromQL syntax, metric names.

Whether its queries return the right numbers is proven on a real Prometheus in
tests/prometheus; this catches mistakes without one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubetune.api.status import TrialState
from kubetune.engine import summarize
from kubetune.metrics import Metrics
from tests.support.dashboard import load_dashboard, panels, variable_queries
from tests.support.experiments import T0, small_experiment, trial

REQUIRED_PANELS = {
    "Dollars spent per experiment and in total", "Dollars spent (total)",
    "Best objective value over time", "Dollars to reach the current best", "Trials by state",
    "Running trials and GPUs in use", "Trial duration p50 / p95",
    "Suggestion latency p50 / p95", "Budget remaining",
}


def exported_names() -> set[str]:
    """Every sample name a fully populated exporter exposes."""
    exp = small_experiment()
    status = summarize(exp.spec, [trial(0, TrialState.succeeded, 0, 60, 0.9),
                                  trial(1, TrialState.running, 30, None)],
                       T0.replace(minute=5))
    metrics = Metrics(process_metrics=False)
    metrics.update("ns", "exp", exp.spec, status)
    text = generate_latest(metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_structure_and_variables() -> None:
    dash = load_dashboard()
    assert dash["schemaVersion"] >= 39 and dash["uid"] == "kubetune-cost"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "experiment"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] and variables[name]["multi"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    assert "$namespace" in variable_queries(dash)["experiment"]
    titles = {p["title"] for p in panels(dash)}
    assert titles >= REQUIRED_PANELS, REQUIRED_PANELS - titles
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(dash):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_every_query_uses_the_variables_and_exported_metrics() -> None:
    names = exported_names()
    for panel in panels(load_dashboard()):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}"
            for selector in re.findall(r"kubetune_\w+\{([^}]*)\}", expr):
                assert 'namespace=~"$namespace"' in selector, (panel["title"], expr)
                assert 'experiment=~"$experiment"' in selector, (panel["title"], expr)
            for metric in re.findall(r"\bkubetune_\w+", expr):
                assert metric in names, f"{panel['title']}: {metric} is not exported"


def test_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule (variables substituted)."""
    rules = []
    for panel in panels(load_dashboard()):
        for target in panel["targets"]:
            expr = target["expr"].replace("$namespace", ".*").replace("$experiment", ".*")
            rules.append({"record": f"dashboard:panel{panel['id']}_{target['refId']}:check",
                          "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr
