# syntax=docker/dockerfile:1.7
# Every shopstream service image. Build context: the repository root.
#
#   docker build --build-arg SERVICE=sentiment -t shopstream/sentiment:0.1.0-cpu .
#   docker build --build-arg SERVICE=describer --build-arg VARIANT=cuda \
#       -t shopstream/describer:0.1.0-cuda .
#
# Build arguments:
#   SERVICE            required: the directory under services/ (sentiment, describer, responder,
#                      recommender, or any service added the way docs/architecture.md says).
#   VARIANT=cpu|cuda   cpu: torch of the locked version from PyTorch's CPU index, without the CUDA
#                      runtime wheels (about 4 GB smaller). cuda: the locked PyPI wheels, which
#                      carry the CUDA runtime; the host needs only the NVIDIA driver and the
#                      container toolkit (or the Kubernetes device plugin).
#   BAKE_MODELS        space-separated registry names converted at build time into
#                      /opt/shopstream/cache. Empty (the default): the service's own list,
#                      `[tool.shopstream.image] bake-models` in its pyproject.toml. `none`:
#                      convert on first start into a writable volume named by SHOPSTREAM_CACHE
#                      (see docs/operations.md).
#   TORCH_CPU_INDEX, TORCH_CPU_LOCAL_VERSION   where the cpu variant's torch comes from.
#
# The image runs `python -m shopstream.container`, which serves $SHOPSTREAM_SERVICE with its
# metrics and health server on all interfaces (an image cannot spell the service's env prefix,
# `<SERVICE>_HTTP_HOST`, from a build argument, so the entry point sets that default).

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# Dependencies only: this layer is rebuilt when uv.lock or a pyproject.toml changes, not when
# sources do.
FROM python:${PYTHON_VERSION}-slim-bookworm AS deps
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/shopstream/venv
WORKDIR /src
ARG SERVICE
RUN test -n "$SERVICE" \
 || { echo "SERVICE must name a directory under services/: --build-arg SERVICE=sentiment" >&2; \
      exit 2; }
ARG VARIANT=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_CPU_LOCAL_VERSION=+cpu
# The cpu variant keeps torch and the CUDA wheels out of the locked sync (their names are read
# from uv.lock) and installs the CPU build of the same torch version instead. The skip list is
# saved so the second sync below leaves that torch alone (--inexact) and skips the same wheels.
# hadolint ignore=SC2086
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=shared/pyproject.toml,target=/src/shared/pyproject.toml \
    --mount=type=bind,source=services/${SERVICE}/pyproject.toml,target=/src/services/${SERVICE}/pyproject.toml \
    set -eu; \
    case "$VARIANT" in cpu|cuda) ;; *) echo "VARIANT must be cpu or cuda" >&2; exit 2;; esac; \
    skip=""; \
    if [ "$VARIANT" = cpu ]; then \
      for name in torch $(sed -nE 's/^name = "((nvidia-|cuda-)[^"]+|triton)"$/\1/p' uv.lock); do \
        skip="$skip --no-install-package $name"; \
      done; \
    fi; \
    mkdir -p /opt/shopstream; \
    echo "$skip" > /opt/shopstream/uv-skip; \
    uv sync --frozen --no-dev --no-install-workspace --package "shopstream-$SERVICE" $skip; \
    if [ "$VARIANT" = cpu ]; then \
      torch_version="$(sed -n '/^name = "torch"$/{n;s/^version = "\(.*\)"$/\1/p;}' uv.lock)"; \
      uv pip install --python /opt/shopstream/venv/bin/python --no-deps \
        --index-url "$TORCH_CPU_INDEX" "torch==${torch_version}${TORCH_CPU_LOCAL_VERSION}"; \
    fi

# The workspace packages themselves, installed as wheels (not editable) so /src is not needed
# at run time.
FROM deps AS app
COPY pyproject.toml uv.lock ./
COPY shared shared
ARG SERVICE
COPY services/${SERVICE} services/${SERVICE}
# hadolint ignore=SC2046
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --inexact --package "shopstream-$SERVICE" \
      $(cat /opt/shopstream/uv-skip)

# Converted models: depends on the locked packages, the service's pyproject.toml (its list of
# models) and the conversion code in shared/ only, so a change to the service's sources does not
# redo the conversion.
FROM deps AS models
ARG SERVICE
ARG BAKE_MODELS=""
COPY shared/src shared/src
RUN --mount=type=bind,source=services/${SERVICE}/pyproject.toml,target=/src/service.toml \
    set -eu; \
    mkdir -p /opt/shopstream/cache; \
    names="$BAKE_MODELS"; \
    if [ -z "$names" ]; then \
      names="$(/opt/shopstream/venv/bin/python -c "import tomllib; \
print(' '.join(tomllib.load(open('/src/service.toml', 'rb'))['tool']['shopstream']['image']['bake-models']))")"; \
    fi; \
    [ "$names" != none ] || names=""; \
    for name in $names; do \
      SHOPSTREAM_CACHE=/opt/shopstream/cache PYTHONPATH=/src/shared/src \
        /opt/shopstream/venv/bin/python -c \
        "import sys; from shopstream.models.registry import resolve; print(resolve(sys.argv[1]))" \
        "$name"; \
    done

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG SERVICE
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="shopstream-${SERVICE}" \
      org.opencontainers.image.description="shopstream ${SERVICE} service (${VARIANT})"
RUN groupadd --system --gid 10001 shopstream \
 && useradd --system --uid 10001 --gid shopstream --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin shopstream \
 && install -d -o shopstream -g shopstream -m 0755 /var/cache/shopstream
COPY --from=app /opt/shopstream/venv /opt/shopstream/venv
COPY --from=models /opt/shopstream/cache /opt/shopstream/cache
# Read-only root filesystem: everything that writes goes under /tmp (an emptyDir or tmpfs):
# HOME for libraries that cache there, and bytecode is precompiled, never written at run time.
# SHOPSTREAM_CACHE is read-only when the models are baked; without baking, point it at a
# writable volume such as /var/cache/shopstream. The service's own HTTP port setting
# (`<SERVICE>_HTTP_PORT`) is read by the health check too; 8000 is its default.
ENV PATH=/opt/shopstream/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    SHOPSTREAM_CACHE=/opt/shopstream/cache \
    SHOPSTREAM_SERVICE=${SERVICE}
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "shopstream.container", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "shopstream.container"]
