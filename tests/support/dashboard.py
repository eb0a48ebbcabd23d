"""The Grafana dashboard's queries, ready to evaluate: variables substituted as Grafana would."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "helm" / "kubetune" / "dashboards" / "kubetune.json"


@dataclass(frozen=True)
class PanelQuery:
    panel: str  # the panel's title
    ref: str  # the target's refId
    expr: str  # with the variables substituted


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's ``$var`` and ``${var}`` interpolation (values used as they are)."""
    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"undefined dashboard variable ${name} in {expr!r}")
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return [p for p in out if p.get("type") != "row"]


def panel_queries(dashboard: dict[str, Any], variables: dict[str, str]) -> list[PanelQuery]:
    return [PanelQuery(panel["title"], target["refId"], substitute(target["expr"], variables))
            for panel in panels(dashboard) for target in panel.get("targets") or []]


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """The query variables' ``label_values(...)`` definitions, by variable name."""
    out = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            out[var["name"]] = query["query"] if isinstance(query, dict) else query
    return out


def label_values_call(definition: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (label, selector) for /api/v1/label/<l>/values."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", definition)
    if not match:
        raise ValueError(f"not a label_values(selector, label) query: {definition}")
    return match.group(2), match.group(1)
