#!/usr/bin/env bash
# Make a machine without a Docker daemon or registry access able to build and run shopstream's
# images: podman from Debian, configured for this kind of kernel, and LOCAL STAND-INS for the
# public images the Dockerfiles and tests name (built here, tagged with the public names, and
# labelled `shopstream.standin=true`, a label images built on them inherit). Idempotent: every
# step is skipped when its result exists.
#
#   scripts/containers.sh              podman + base stand-ins (python, uv) + the Kafka stand-in
#   scripts/containers.sh compose      also what docker-compose.yml names: the Kafka stand-in as
#                                      apache/kafka, and Prometheus from Debian's package
#
# On a machine where a real Docker engine answers, it does nothing: that engine pulls the real
# images. The Dockerfiles keep the real FROM lines either way.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "containers: $*" >&2; }

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
    && ! docker info 2>/dev/null | grep -qi podman; then
  log "a Docker engine answers: it pulls the real public images; no stand-ins are built"
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# --- podman and its configuration ---------------------------------------------------------------
missing=()
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
# Container names on a compose network (kafka:19092) need CNI's dnsname plugin (a podman
# Recommends that --no-install-recommends leaves out).
[ -e /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# crun (podman's default) fails on this kernel's hybrid cgroups, and the default rlimits are
# refused inside the sandbox (setrlimit RLIMIT_NOFILE: Operation not permitted).
conf=/etc/containers/containers.conf
if [ ! -e "$conf" ]; then
  log "writing $conf (runtime runc, explicit ulimits)"
  "${sudo_cmd[@]}" tee "$conf" >/dev/null <<'EOF'
# Written by shopstream's scripts/containers.sh: crun fails on hybrid cgroups here, and
# podman's default rlimits are refused.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
elif ! grep -q '^runtime = "runc"' "$conf"; then
  log "$conf exists but does not select runc; leaving it alone (podman may fail)"
fi

# --- stand-in images ----------------------------------------------------------------------------
STANDIN_LABEL="shopstream.standin=true"
PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm
BASE_IMAGE=localhost/shopstream-standin/bookworm:latest
UV_VERSION="$(sed -nE 's/^ARG UV_VERSION=(.*)$/\1/p' Dockerfile)"
UV_IMAGE="ghcr.io/astral-sh/uv:${UV_VERSION}"
KAFKA_VERSION="$(sed -nE 's/^    kafka_version: str = "(.*)"$/\1/p' shared/src/shopstream/devbroker/broker.py)"
# The name testcontainers' KafkaContainer defaults to; it checks the tag (>= 7.0.0 for KRaft).
KAFKA_IMAGE="${SHOPSTREAM_KAFKA_IMAGE:-docker.io/confluentinc/cp-kafka:7.6.0}"
# docker-compose.yml's names for the broker and Prometheus (read from it, so they stay in step).
APACHE_KAFKA_IMAGE="docker.io/$(sed -nE 's/^    image: (apache\/kafka:.*)$/\1/p' docker-compose.yml)"
PROMETHEUS_IMAGE="docker.io/$(sed -nE 's/^    image: (prom\/prometheus:.*)$/\1/p' docker-compose.yml)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

exists() { podman image exists "$1"; }

# Debian bookworm with Python 3.11 (3.11.2, where the public image has 3.11.x from python.org),
# one rootfs for the python stand-in and for the Kafka and Prometheus stand-ins built on it.
if ! exists "$BASE_IMAGE"; then
  log "building the stand-in base $BASE_IMAGE with mmdebstrap (about a minute)"
  # Debian's ca-certificates, as in the public image, then the host's bundle over it: where a
  # TLS-intercepting egress proxy re-signs PyPI's certificate, uv in the build trusts it too.
  host_bundle=/etc/ssl/certs/ca-certificates.crt
  mmdebstrap --quiet --variant=minbase --include=python3,python-is-python3,ca-certificates \
    --customize-hook="if [ -s $host_bundle ]; then cp $host_bundle \"\$1$host_bundle\"; fi" \
    bookworm "$work/rootfs.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" </dev/null
  podman import --quiet \
    --change "LABEL $STANDIN_LABEL" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$BASE_IMAGE" >/dev/null
  rm -f "$work/rootfs.tar"
fi
if ! exists "$PYTHON_IMAGE"; then
  log "tagging $BASE_IMAGE as the STAND-IN for $PYTHON_IMAGE"
  podman tag "$BASE_IMAGE" "$PYTHON_IMAGE"
fi

# uv's public image is FROM scratch with /uv and /uvx; the same binaries ship in the PyPI wheel.
if ! exists "$UV_IMAGE"; then
  log "building the STAND-IN for $UV_IMAGE from the uv $UV_VERSION wheel on PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --dest "$work/wheel" "uv==$UV_VERSION"
  mkdir -p "$work/uv"
  python3 - "$work/wheel" "$work/uv" <<'EOF'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.endswith(("/scripts/uv", "/scripts/uvx")):
            target = pathlib.Path(sys.argv[2]) / pathlib.PurePosixPath(name).name
            target.write_bytes(archive.read(name))
            target.chmod(0o755)
EOF
  printf 'FROM scratch\nCOPY uv uvx /\nLABEL %s\nENTRYPOINT ["/uv"]\n' "$STANDIN_LABEL" \
    > "$work/uv/Containerfile"
  podman build --quiet --pull=never -t "$UV_IMAGE" "$work/uv" >/dev/null
fi

# Kafka: the Maven Central jars the local broker uses, Debian's JRE, and entry scripts that
# speak the cp-kafka image's KAFKA_* environment convention (what testcontainers and the compose
# file set). See deploy/standins/kafka/.
if ! exists "$KAFKA_IMAGE"; then
  log "building the STAND-IN for $KAFKA_IMAGE (Apache Kafka $KAFKA_VERSION jars + Debian JRE)"
  jars="$(uv run --frozen python -c "from shopstream.devbroker import LocalBrokerConfig, ensure_jars; print(ensure_jars(LocalBrokerConfig()))")"
  cp -r deploy/standins/kafka "$work/kafka"
  cp -r "$jars" "$work/kafka/jars"
  podman build --quiet --pull=never --build-arg "BASE=$BASE_IMAGE" \
    --build-arg "KAFKA_VERSION=$KAFKA_VERSION" -t "$KAFKA_IMAGE" "$work/kafka" >/dev/null
fi

if [ "${1:-}" = compose ]; then
  if ! exists "$APACHE_KAFKA_IMAGE"; then
    log "tagging the Kafka stand-in as the STAND-IN for $APACHE_KAFKA_IMAGE"
    podman tag "$KAFKA_IMAGE" "$APACHE_KAFKA_IMAGE"
  fi
  if ! exists "$PROMETHEUS_IMAGE"; then
    log "building the STAND-IN for $PROMETHEUS_IMAGE from Debian's prometheus package"
    podman build --quiet --pull=never --build-arg "BASE=$BASE_IMAGE" -t "$PROMETHEUS_IMAGE" \
      deploy/standins/prometheus >/dev/null
  fi
fi

standins=("$PYTHON_IMAGE" "$UV_IMAGE" "$KAFKA_IMAGE")
exists "$APACHE_KAFKA_IMAGE" && standins+=("$APACHE_KAFKA_IMAGE")
exists "$PROMETHEUS_IMAGE" && standins+=("$PROMETHEUS_IMAGE")
log "local stand-ins (not the public images) ready: ${standins[*]}"
