#!/usr/bin/env bash
# The demo command: bootstrap, then start Kafka and push a sample shop's events through shopstream.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
uv run --frozen shopstream demo "$@"
