#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) in its own virtualenv in the
# shopstream cache, for the tests of the describer's `openai` backend. Kept out of the uv
# workspace on purpose (see the root pyproject's override-dependencies): it compiles llama.cpp.
# Idempotent: skipped when the venv already imports llama_cpp.server at the pinned version.
# Prints the venv's python on stdout.
#
# CPU-only and portable (GGML_NATIVE=OFF, AVX2/FMA/F16C): a native build on a VM that lists AMX
# died with "invalid opcode" in libggml-cpu on its first completion. CMAKE_ARGS is appended; the
# flags are stamped into the venv, and other flags rebuild it. The compile runs on at most
# CMAKE_BUILD_PARALLEL_LEVEL (2) cores.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
VENV="${SHOPSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shopstream}/tools/llama-server/venv"
PYTHON="$VENV/bin/python"
BUILD_FLAGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON ${CMAKE_ARGS:-}"
STAMP="$VENV/shopstream-cmake-args"

installed() {
  [ -x "$PYTHON" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$BUILD_FLAGS" ] && "$PYTHON" - "$LLAMA_CPP_PYTHON_VERSION" >/dev/null 2>&1 <<'EOF'
import sys

import llama_cpp
import llama_cpp.server.app  # noqa: F401

sys.exit(llama_cpp.__version__ != sys.argv[1])
EOF
}

if ! installed; then
  echo "llama_server: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into $VENV" \
    "(compiles llama.cpp once: about 4-5 min on 2 cores)" >&2
  started=$SECONDS
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  # --no-config: the workspace's settings (its override drops llama-cpp-python) do not apply.
  uv venv --no-config --quiet --python 3.11 "$VENV"
  # The multimodal library (mtmd) is not needed to serve a text model and doubles the compile.
  # --refresh-package: a cached wheel from other CMAKE_ARGS must not be reused.
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    CMAKE_ARGS="$BUILD_FLAGS" \
    uv pip install --no-config --quiet --python "$PYTHON" \
    --refresh-package llama-cpp-python "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
  printf '%s' "$BUILD_FLAGS" > "$STAMP"
  installed || { echo "llama_server: $VENV does not import llama_cpp.server" >&2; exit 1; }
  echo "llama_server: built in $((SECONDS - started)) s" >&2
fi
echo "$PYTHON"
