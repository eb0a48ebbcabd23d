"""Turn pydantic validation errors into messages that name the field."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from kubetune.api.spec import FieldError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where (``spec.parameters[0].min``) and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidSpec(ValueError):
    """A manifest that cannot be run, with every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "function-wrap")):
            continue
        elif part in ("str", "int", "float", "bool") and out:
            # union branch names, e.g. values[0].str or trialTimeout.int: not a field
            continue
        else:
            out = f"{out}.{part}" if out else part
    return out


def describe(error: ValidationError, prefix: str = "spec") -> list[Problem]:
    """One :class:`Problem` per error, deduplicated, in input order."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            field = _path(prefix, loc)
            field = f"{field}.{cause.field}" if field else cause.field
            reason = cause.reason
        else:
            field = _path(prefix, loc)
            reason = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                reason = "unknown field (not part of the TuningExperiment API)"
            elif item["type"] == "missing":
                reason = "required"
        key = f"{field}|{reason}"
        if key not in seen:
            seen.add(key)
            problems.append(Problem(field, reason))
    return problems
