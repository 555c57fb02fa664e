#!/usr/bin/env bash
# Runs pytest with the `kafka_bootstrap` fixture's testcontainers branch: the broker is a Kafka
# container started by testcontainers (SHOPSTREAM_KAFKA_IMAGE, default cp-kafka:7.6.0; a local
# stand-in where Docker Hub is out of reach, see scripts/containers.sh). Without a Docker
# engine, podman's Docker-compatible API answers on a private socket for the length of the run.
#
#   scripts/testcontainers.sh [-q]                 the recommender's real-broker tests
#   scripts/testcontainers.sh tests/integration/test_runtime_real_broker.py -k commit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/containers.sh

export SHOPSTREAM_TEST_BROKER=testcontainers
if ! uv run --frozen python -c "import docker; docker.from_env().ping()" >/dev/null 2>&1; then
  socket_dir="$(mktemp -d)"
  podman system service --time=0 "unix://$socket_dir/podman.sock" &
  service_pid=$!
  trap 'kill "$service_pid" 2>/dev/null; wait "$service_pid" 2>/dev/null; rm -rf "$socket_dir"' EXIT
  for _ in $(seq 50); do [ -S "$socket_dir/podman.sock" ] && break; sleep 0.1; done
  export DOCKER_HOST="unix://$socket_dir/podman.sock"
  # Ryuk (testcontainers' reaper) is a Docker Hub image: the fixture's `with` block removes
  # the container instead. This machine may itself be a container, where testcontainers would
  # guess a gateway address; the engine runs here, so its published ports are on 127.0.0.1.
  export TESTCONTAINERS_RYUK_DISABLED=true
  export TESTCONTAINERS_CONNECTION_MODE=docker_host
  export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
  echo "testcontainers: podman's Docker API on $DOCKER_HOST" >&2
fi
# Only options given (e.g. -q): still the default tests, never the whole suite by accident.
paths=0
for argument in "$@"; do case "$argument" in -*) ;; *) paths=$((paths + 1)) ;; esac; done
if [ "$paths" -eq 0 ]; then
  set -- "$@" tests/integration/test_recommender_service.py
fi
uv run --frozen pytest "$@"
