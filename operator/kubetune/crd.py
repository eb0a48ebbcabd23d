"""Generate the TuningExperiment CRD from the pydantic models (``kubetune crd``).

pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural*
OpenAPI v3 schema: every node typed, no ``$ref``/``anyOf`` for nullability,
``nullable`` instead, boolean exclusive bounds, and explicit markers for
free-form objects. Defaults are folded into the descriptions (the operator
applies them) so the stored spec stays exactly what the user wrote.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from kubetune.api.spec import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, ExperimentSpec
from kubetune.api.status import ExperimentStatus

# CEL rules for clusters that enforce them (Kubernetes 1.25+); older API servers
# drop the unknown key, and the operator's own validation remains the safety net.
PARAMETER_RULES = [
    {
        "rule": "self.type == 'categorical' || (has(self.min) && has(self.max) && self.min < self.max)",
        "message": "min must be less than max",
    },
    {
        "rule": "self.type != 'categorical' || (has(self.values) && size(self.values) > 0)",
        "message": "a categorical parameter needs values",
    },
    {
        "rule": "!has(self.scale) || self.scale != 'log' || (has(self.min) && self.min > 0)",
        "message": "log scale needs min > 0",
    },
]


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            target.update(extra)
            return _inline(target, defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one (inlined) JSON-Schema node into structural OpenAPI v3."""
    node = dict(node)
    description = node.pop("description", None)
    default = node.pop("default", None)
    node.pop("title", None)
    out: dict[str, Any] = {}

    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        nullable = len(options) < len(node.get("anyOf", [])) or True
        types = {o.get("type") for o in options}
        if len(options) == 1:
            inner = _structural({**options[0], **node})
            out.update(inner)
            out["nullable"] = nullable
        elif types == {"integer", "string"}:
            out["x-kubernetes-int-or-string"] = True
        else:  # e.g. string | number | boolean categorical values
            out["x-kubernetes-preserve-unknown-fields"] = True
    kind = node.get("type")
    if kind == "object":
        out["type"] = "object"
        props = node.get("properties")
        if props:
            out["properties"] = {k: _structural(v) for k, v in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if not props:
            if isinstance(extra, dict) and extra.get("type") in ("number", "string", "integer"):
                out["additionalProperties"] = _structural(extra)
            else:
                out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["type"] = "array"
        out["items"] = _structural(node.get("items", {}))
        for key in ("minItems", "maxItems"):
            if key in node:
                out[key] = node[key]
    elif kind is not None:
        out["type"] = kind
        for key in ("minimum", "maximum", "minLength", "maxLength", "pattern", "format", "enum"):
            if key in node:
                out[key] = node[key]
        for key, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if key in node:
                out[plain] = node[key]
                out[key] = True
        if "const" in node:
            out["enum"] = [node["const"]]
    elif "enum" in node:
        out["type"] = "string"
        out["enum"] = node["enum"]
    if not out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if description:
        text = description.strip()
        if default not in (None, {}, []):
            text += f" Default: {default}."
        out = {"description": text, **out}
    return out


def openapi_schema(model: type) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _structural(_inline(schema, defs))


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a mapping."""
    spec_schema = openapi_schema(ExperimentSpec)
    spec_schema["description"] = "Desired state: search space, objective, algorithm, budget, " \
        "price and trial template."
    spec_schema["properties"]["parameters"]["items"]["x-kubernetes-validations"] = PARAMETER_RULES
    template = spec_schema["properties"]["trialTemplate"]["properties"]["spec"]
    template["x-kubernetes-preserve-unknown-fields"] = True
    status_schema = openapi_schema(ExperimentStatus)
    status_schema["description"] = "Observed state, written by the operator: every trial, the " \
        "best one, counts and dollars spent."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kubetune", "app.kubernetes.io/part-of": "kubetune"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["kubetune"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Status", "type": "string", "jsonPath": ".status.phase",
                     "description": "Created, Running, Succeeded, Failed or Invalid."},
                    {"name": "Trials", "type": "string", "jsonPath": ".status.progress",
                     "description": "Completed trials / maxTrials."},
                    {"name": "Best", "type": "number", "jsonPath": ".status.best.value",
                     "description": "Best objective value so far."},
                    {"name": "Cost", "type": "number", "jsonPath": ".status.totalCost",
                     "description": "Dollars spent so far."},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A hyperparameter-tuning experiment: kubetune launches one "
                    "Job per trial, chooses configurations by Bayesian optimization, and records "
                    "every observation and the money spent in its status.",
                    "properties": {
                        "apiVersion": {"type": "string", "description": "kubetune.io/v1alpha1"},
                        "kind": {"type": "string", "description": "TuningExperiment"},
                        "metadata": {"type": "object"},  # the API server forbids more here
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                    "required": ["spec"],
                }},
            }],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `kubetune crd` from operator/kubetune/api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
