#!/usr/bin/env bash
# `make containers`: the compose stack end to end with podman-compose. Builds the stand-ins and
# the four images if needed (scripts/containers.sh, scripts/images.sh), brings up Kafka, each
# service's topic job, the services and Prometheus (docker-compose.yml + docker-compose.podman.yml),
# publishes one event of each input type from the host, reads every result topic, checks that
# Prometheus scrapes every service (tests/containers/compose_stack_check.py), stops each service
# with SIGTERM (exit code 0, every consumed record committed: compose_stopped_check.py), and takes
# the stack down with its volumes. Where a Docker engine answers, `docker compose` runs the
# unmodified docker-compose.yml instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PODMAN_COMPOSE_VERSION=1.6.0
# COMPOSE_SERVICES picks a subset (each cuda image takes 7.6 GB, plus as much again in build
# cache): Kafka and Prometheus always run, with the subset's topic jobs; the check covers it.
read -r -a SERVICES <<<"${COMPOSE_SERVICES:-sentiment describer responder recommender}"
started=$SECONDS

scripts/containers.sh compose
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
    && ! docker info 2>/dev/null | grep -qi podman; then
  compose=(docker compose -f docker-compose.yml)
  "${compose[@]}" build
else
  ONLY_MISSING="${ONLY_MISSING:-1}" scripts/images.sh "${SERVICES[@]}"
  # podman 4.3 has no `podman compose`; podman-compose comes from PyPI (Debian's 1.0.3 lacks
  # `depends_on` conditions), run by uvx so it stays out of the project's lock.
  compose=(uvx --quiet "podman-compose==$PODMAN_COMPOSE_VERSION"
    -f docker-compose.yml -f docker-compose.podman.yml)
fi
echo "compose: images ready after $((SECONDS - started)) s" >&2

cleanup() { "${compose[@]}" down -v --timeout 60 >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ "${compose[0]}" != uvx ]; then
  "${compose[@]}" up -d --wait kafka "${SERVICES[@]}"
  "${compose[@]}" up -d --wait --no-deps prometheus
else
  # podman-compose ignores `condition: service_healthy` on podman < 4.6 (4.3.1 here), and its
  # `--requires` chain fails to start a service whose dependency has a dependency. So the start
  # order of docker-compose.yml is done here, one stage at a time with --no-deps. Podman runs
  # health checks from systemd timers, and there is no systemd here: `podman healthcheck run`
  # runs them.
  container() { podman ps --all --quiet --filter "label=com.docker.compose.service=$1"; }
  wait_healthy() {
    local service=$1 deadline=$((SECONDS + $2))
    until podman healthcheck run "$(container "$service")" >/dev/null 2>&1; do
      if [ "$SECONDS" -gt "$deadline" ]; then
        echo "compose: $service not healthy after $2 s" >&2
        podman logs --tail 30 "$(container "$service")" >&2 || true
        return 1
      fi
      sleep 3
    done
    echo "compose: $service healthy at $((SECONDS - started)) s" >&2
  }
  "${compose[@]}" up -d --no-deps kafka
  wait_healthy kafka 120
  for service in "${SERVICES[@]}"; do
    "${compose[@]}" up -d --no-deps "$service-topics"
    topics_exit="$(podman wait "$(container "$service-topics")")"
    [ "$topics_exit" = 0 ] || { podman logs "$(container "$service-topics")" >&2; exit 1; }
  done
  "${compose[@]}" up -d --no-deps "${SERVICES[@]}"
  for service in "${SERVICES[@]}"; do wait_healthy "$service" 600; done
  "${compose[@]}" up -d --no-deps prometheus
  wait_healthy prometheus 120
fi
export SHOPSTREAM_COMPOSE_SERVICES="${SERVICES[*]}" SHOPSTREAM_COMPOSE_BOOTSTRAP=localhost:9092
uv run --frozen pytest -p no:cacheprovider -q tests/containers/compose_stack_check.py

# SIGTERM drains: each service stops within its grace period with exit code 0, and its group has
# committed everything it consumed (tests/containers/compose_stopped_check.py).
for service in "${SERVICES[@]}"; do
  "${compose[@]}" stop --timeout 120 "$service" >/dev/null
  id="$(podman ps --all --quiet --filter "label=com.docker.compose.service=$service" 2>/dev/null \
    || docker ps --all --quiet --filter "label=com.docker.compose.service=$service")"
  code="$(podman inspect --format '{{.State.ExitCode}}' "$id" 2>/dev/null \
    || docker inspect --format '{{.State.ExitCode}}' "$id")"
  echo "compose: $service stopped with exit code $code at $((SECONDS - started)) s" >&2
  [ "$code" = 0 ] || { "${compose[@]}" logs --tail 30 "$service" >&2 || true; exit 1; }
done
uv run --frozen pytest -p no:cacheprovider -q tests/containers/compose_stopped_check.py
echo "compose: stack checked after $((SECONDS - started)) s in all" >&2
