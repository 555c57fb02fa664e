#!/usr/bin/env bash
# Builds the service images from the Dockerfile and prints each one's build time and size.
#
#   scripts/images.sh                    all four, VARIANT=cuda (the locked PyPI wheels)
#   scripts/images.sh sentiment          one
#   VARIANT=cpu scripts/images.sh        the cpu variant: needs PyTorch's CPU index
#   ONLY_MISSING=1 scripts/images.sh     skip images that exist (an unchanged rebuild still
#                                        takes about a minute: buildah hashes the 6.9 GB venv)
#
# With podman (scripts/containers.sh) the base images are local stand-ins (--pull=never) and the
# host's uv cache is lent to the build so torch and the CUDA wheels are not downloaded again.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT="${VARIANT:-cuda}"
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(sentiment recommender responder describer)

engine=docker
flags=()
if command -v podman >/dev/null 2>&1; then
  engine=podman
  flags=(--pull=never)
  cache="$(uv cache dir 2>/dev/null || true)"
  [ -d "$cache" ] && flags+=(--volume "$cache:/root/.cache/uv")
fi

for service in "${services[@]}"; do
  tag="localhost/shopstream/$service:0.1.0-$VARIANT"
  if [ "${ONLY_MISSING:-0}" = 1 ] && "$engine" image inspect "$tag" >/dev/null 2>&1; then
    echo "images: $tag exists; not rebuilt (ONLY_MISSING=1)" >&2
    continue
  fi
  # The image the tag points at now is removed once the new one is built: it is about 7 GB,
  # and every build of changed sources would otherwise leave one behind, dangling.
  previous="$("$engine" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
  started=$SECONDS
  "$engine" build "${flags[@]}" -f Dockerfile --build-arg "SERVICE=$service" \
    --build-arg "VARIANT=$VARIANT" -t "$tag" . >"${TMPDIR:-/tmp}/shopstream-build-$service.log" 2>&1 \
    || { tail -30 "${TMPDIR:-/tmp}/shopstream-build-$service.log"; exit 1; }
  built="$("$engine" image inspect --format '{{.Id}}' "$tag")"
  if [ -n "$previous" ] && [ "$previous" != "$built" ]; then
    "$engine" rmi "$previous" >/dev/null 2>&1 || true
  fi
  size="$("$engine" image inspect --format '{{.Size}}' "$tag")"
  printf 'images: %-40s built in %4d s, %5.2f GB\n' "$tag" "$((SECONDS - started))" \
    "$(echo "$size" | awk '{printf "%.2f", $1 / 1e9}')"
done
