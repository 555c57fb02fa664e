#!/usr/bin/env bash
# The test command: bootstrap, lint, type-check, then every test layer (unit, integration on a
# real broker, model, eval, and the container layer: the sentiment image built and run). Extra
# arguments go to pytest. A full run (no arguments) then runs the recommender's real-broker
# tests a second time with the broker that testcontainers starts (scripts/testcontainers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# podman and the local stand-ins for the public base images (nothing where Docker answers).
scripts/containers.sh
uv run --frozen ruff check .
uv run --frozen mypy shared/src services/*/src bench
uv run --frozen shopstream schemas check
uv run --frozen pytest "$@"
if [ "$#" -eq 0 ]; then
  scripts/testcontainers.sh
fi
