#!/usr/bin/env bash
# Make a fresh machine ready: uv, the locked Python environment, Kafka's jars, and the tools the
# deployment tests run (Prometheus and kcat from Debian, a pinned kustomize). Idempotent: each
# step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

KUSTOMIZE_VERSION=v5.7.1
TOOLS_BIN="${SHOPSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shopstream}/tools/bin"

if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --all-packages --frozen --quiet
uv run --frozen python -c "from shopstream.devbroker import LocalBrokerConfig, ensure_jars; ensure_jars(LocalBrokerConfig())"

# Prometheus (a real scrape in the integration tests, promtool for the config) and kcat (a
# third-party Kafka client) come from Debian's packages.
missing_packages=()
command -v prometheus >/dev/null 2>&1 || missing_packages+=(prometheus)
command -v kcat >/dev/null 2>&1 || missing_packages+=(kcat)
if [ "${#missing_packages[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${missing_packages[*]} from Debian"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing_packages[@]}" >/dev/null
fi

# Go tools for the offline deployment tests, built into the shopstream cache: a pinned kustomize
# (renders the Kubernetes overlays; built once) and tools/composecheck (resolves the compose
# files with Docker Compose's own loader; go build is incremental, so it is rebuilt cheaply).
go_cmd="$(command -v go || echo /usr/local/go/bin/go)"
if [ -x "$go_cmd" ]; then
  mkdir -p "$TOOLS_BIN"
  if ! "$TOOLS_BIN/kustomize" version 2>/dev/null | grep -qx "$KUSTOMIZE_VERSION"; then
    echo "bootstrap: building kustomize $KUSTOMIZE_VERSION (once)"
    GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod "$go_cmd" install \
      "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  fi
  "$go_cmd" build -C tools/composecheck -o "$TOOLS_BIN/composecheck" .
else
  echo "bootstrap: no Go toolchain: the compose and Kubernetes tests will fail" >&2
fi

# llama.cpp's OpenAI-compatible server in its own venv in the cache, for the describer's
# `openai` backend test (compiles llama.cpp once: about 4-5 minutes on 2 cores).
scripts/llama_server.sh >/dev/null
