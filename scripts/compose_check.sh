#!/usr/bin/env bash
# `make containers`: the compose stack end to end with podman-compose. Builds the stand-ins and
# the four images if needed (scripts/containers.sh, scripts/images.sh), brings up Kafka, the
# topic job, the services and Prometheus (docker-compose.yml + docker-compose.podman.yml),
# publishes one event of each input type from the host, reads every result topic, checks that
# Prometheus scrapes every service (tests/containers/compose_stack_check.py), and takes the
# stack down with its volumes. Where a Docker engine answers, `docker compose` runs the
# unmodified docker-compose.yml instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PODMAN_COMPOSE_VERSION=1.6.0
SERVICES=(kafka topics sentiment describer responder recommender prometheus)
started=$SECONDS

scripts/containers.sh compose
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
    && ! docker info 2>/dev/null | grep -qi podman; then
  compose=(docker compose -f docker-compose.yml)
  "${compose[@]}" build
else
  scripts/images.sh
  # podman 4.3 has no `podman compose`; podman-compose comes from PyPI (Debian's 1.0.3 lacks
  # `depends_on` conditions), run by uvx so it stays out of the project's lock.
  compose=(uvx --quiet "podman-compose==$PODMAN_COMPOSE_VERSION"
    -f docker-compose.yml -f docker-compose.podman.yml)
fi
echo "compose: images ready after $((SECONDS - started)) s" >&2

health_loop_pid=""
cleanup() {
  [ -z "$health_loop_pid" ] || kill "$health_loop_pid" 2>/dev/null || true
  "${compose[@]}" down -v --timeout 60 >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ "${compose[0]}" = uvx ]; then
  # Podman runs health checks from systemd timers; without systemd (this machine is itself a
  # container) nothing would run them and `condition: service_healthy` would never hold.
  (
    while true; do
      for id in $(podman ps --filter label=com.docker.compose.project=shopstream --quiet); do
        podman healthcheck run "$id" >/dev/null 2>&1 || true
      done
      sleep 5
    done
  ) &
  health_loop_pid=$!
fi

up_started=$SECONDS
"${compose[@]}" up -d "${SERVICES[@]}"
echo "compose: up -d returned after $((SECONDS - up_started)) s" >&2
SHOPSTREAM_COMPOSE_BOOTSTRAP=localhost:9092 uv run --frozen pytest -p no:cacheprovider -q \
  tests/containers/compose_stack_check.py
echo "compose: stack checked after $((SECONDS - started)) s in all" >&2
