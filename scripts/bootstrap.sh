#!/usr/bin/env bash
# Make a fresh machine ready: uv, the locked Python environment, Kafka's jars. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --all-packages --frozen --quiet
uv run --frozen python -c "from shopstream import local_broker as b; b.ensure_jars(b.LocalBrokerConfig())"
