#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# Idempotent: re-installs only when a pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.kubetune-setup
want=$(cat operator/pyproject.toml trainer/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "operator[dev]" -e trainer
  echo "$want" > "$stamp"
fi
