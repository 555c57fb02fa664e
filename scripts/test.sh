#!/usr/bin/env bash
# The test command: bootstrap, lint, type-check, then every test layer (unit, integration on a
# real broker, model, eval). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
uv run --frozen ruff check .
uv run --frozen mypy shared/src services/*/src bench
uv run --frozen shopstream schemas check
uv run --frozen pytest "$@"
