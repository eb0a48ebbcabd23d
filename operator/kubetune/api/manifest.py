"""Reading whole TuningExperiment documents (apiVersion, kind, metadata, spec, status)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kubetune.api.errors import InvalidSpec, Problem, describe
from kubetune.api.spec import API_VERSION, KIND, ExperimentSpec
from kubetune.api.status import ExperimentStatus

_DNS_LABEL_MAX = 52  # leaves room for "-<index>" in Job and pod names (63)


@dataclass
class Experiment:
    """A validated manifest: who it is, what it wants, what happened so far."""

    name: str
    spec: ExperimentSpec
    namespace: str = "default"
    generation: int = 1
    status: ExperimentStatus = field(default_factory=ExperimentStatus)
    uid: str | None = None


def parse_spec(raw: Any) -> ExperimentSpec:
    """Validate a spec mapping; raise :class:`InvalidSpec` naming every bad field."""
    if not isinstance(raw, dict):
        raise InvalidSpec([Problem("spec", "required: a mapping")])
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as error:
        raise InvalidSpec(describe(error, "spec")) from None


def parse_status(raw: Any) -> ExperimentStatus:
    """Read a status written earlier; fields unknown to this version are ignored."""
    if not raw:
        return ExperimentStatus()
    known = {k: v for k, v in raw.items() if k in _status_aliases()}
    return ExperimentStatus.model_validate(known)


def _status_aliases() -> set[str]:
    return {f.alias or name for name, f in ExperimentStatus.model_fields.items()}


def load_experiment(doc: Any) -> Experiment:
    """Validate a whole document as ``kubectl apply`` would send it."""
    if not isinstance(doc, dict):
        raise InvalidSpec([Problem("(document)", "must be a mapping (a YAML object)")])
    problems: list[Problem] = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(Problem("apiVersion", f"must be {API_VERSION} (got {doc.get('apiVersion')!r})"))
    if doc.get("kind") != KIND:
        problems.append(Problem("kind", f"must be {KIND} (got {doc.get('kind')!r})"))
    metadata = doc.get("metadata") or {}
    name = metadata.get("name")
    if not name or not isinstance(name, str):
        problems.append(Problem("metadata.name", "required"))
    elif len(name) > _DNS_LABEL_MAX or not _is_dns_label(name):
        problems.append(Problem(
            "metadata.name",
            f"must be a DNS label of at most {_DNS_LABEL_MAX} characters (lowercase letters, "
            f"digits, '-'), got {name!r}",
        ))
    spec: ExperimentSpec | None = None
    try:
        spec = parse_spec(doc.get("spec"))
    except InvalidSpec as error:
        problems.extend(error.problems)
    if problems or spec is None:
        raise InvalidSpec(problems)
    return Experiment(
        name=name,
        namespace=metadata.get("namespace") or "default",
        generation=int(metadata.get("generation") or 1),
        uid=metadata.get("uid"),
        spec=spec,
        status=parse_status(doc.get("status")),
    )


def _is_dns_label(name: str) -> bool:
    return (
        name[0].isalnum()
        and name[-1].isalnum()
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
    )
