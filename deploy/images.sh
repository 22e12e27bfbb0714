#!/usr/bin/env bash
# Builds every infera image with one command (deploy/docker/Dockerfile, one target each).
#
#   deploy/images.sh                        # gateway scheduler worker-agent engine-sim migrate
#   deploy/images.sh gateway scheduler      # only some
#   NODE_IMAGE=local deploy/images.sh       # on a machine that cannot pull: base from deploy/base-image.sh
#   REGISTRY=registry.example.com/infera TAG=0.1.0 PUSH=1 deploy/images.sh
#   ENGINE=docker PLATFORMS=linux/amd64,linux/arm64 PUSH=1 deploy/images.sh   # multi-platform (buildx)
#
# Env:
#   REGISTRY   default ghcr.io/infera (the chart's global.imageRegistry); images are <REGISTRY>/<name>:<TAG>
#   TAG        default the chart's appVersion (what the chart pulls by default)
#   NODE_IMAGE default node:20.20.2-bookworm-slim; `local` builds/reuses the debootstrap base
#              (podman); pin a pulled base by digest with node:20.20.2-bookworm-slim@sha256:...
#   ENGINE     podman | docker; default: docker when a Docker daemon answers, else podman
#   PUSH=1     push each image after building it; PLATFORMS (docker buildx) builds several at once
#   NODE_EXTRA_CA_CERTS  when set (a TLS-inspecting proxy's CA), handed to the build as a secret
# With podman, infera's podman settings are used (deploy/engine.sh: host networking, storage in
# the per-machine cache) unless CONTAINERS_CONF / CONTAINERS_STORAGE_CONF are already set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGISTRY="${REGISTRY:-ghcr.io/infera}"
TAG="${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/helm/infera/Chart.yaml")}"
PUSH="${PUSH:-0}"
PLATFORMS="${PLATFORMS:-}"
NODE_IMAGE="${NODE_IMAGE:-}"
ALL=(gateway scheduler worker-agent engine-sim migrate)
IMAGES=("$@")
[ "${#IMAGES[@]}" -gt 0 ] || IMAGES=("${ALL[@]}")
for name in "${IMAGES[@]}"; do
  [[ " ${ALL[*]} " == *" $name "* ]] || { echo "images.sh: unknown image $name (one of: ${ALL[*]})" >&2; exit 2; }
done

if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
case "$ENGINE" in
  podman)
    # shellcheck source=engine.sh
    . "$ROOT/deploy/engine.sh"
    infera_engine_check
    if [ -z "${CONTAINERS_CONF:-}${CONTAINERS_STORAGE_CONF:-}" ]; then infera_engine_env; fi
    infera_build_lock shared
    # buildah keeps RUN --mount=type=cache folders (the pnpm store) under TMPDIR: make them
    # part of the per-machine cache.
    export TMPDIR="$INFERA_IMAGES_CACHE/tmp"
    mkdir -p "$TMPDIR"
    ;;
  docker)
    docker buildx version >/dev/null 2>&1 || { echo "images.sh: ENGINE=docker needs a Docker daemon with buildx (or use ENGINE=podman: deploy/engine.sh install)" >&2; exit 1; }
    ;;
  *) echo "images.sh: ENGINE must be podman or docker, not $ENGINE" >&2; exit 2 ;;
esac
if [ "$NODE_IMAGE" = local ]; then
  [ "$ENGINE" = podman ] || { echo "images.sh: NODE_IMAGE=local needs ENGINE=podman" >&2; exit 2; }
  NODE_IMAGE="$("$ROOT/deploy/base-image.sh")"
fi

revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
common=(--file "$ROOT/deploy/docker/Dockerfile"
  --label "org.opencontainers.image.version=$TAG"
  --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.source=https://github.com/infera/infera")
[ -n "$NODE_IMAGE" ] && common+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ] && common+=(--secret "id=ca-certificates,src=$NODE_EXTRA_CA_CERTS")

started=$SECONDS
for name in "${IMAGES[@]}"; do
  ref="$REGISTRY/$name:$TAG"
  args=("${common[@]}" --target "$name" --tag "$ref"
    --label "org.opencontainers.image.title=infera-$name")
  echo "==> $ref"
  if [ "$ENGINE" = docker ]; then
    [ -n "$PLATFORMS" ] && args+=(--platform "$PLATFORMS")
    if [[ "$PLATFORMS" == *,* && "$PUSH" != 1 ]]; then
      echo "images.sh: several PLATFORMS cannot be loaded into the local image store: add PUSH=1" >&2
      exit 2
    fi
    if [ "$PUSH" = 1 ]; then args+=(--push); else args+=(--load); fi
    docker buildx build "${args[@]}" "$ROOT"
  else
    [ -n "$PLATFORMS" ] && { echo "images.sh: PLATFORMS is for ENGINE=docker (buildx); podman builds this machine's platform" >&2; exit 2; }
    # Host networking for the build steps (no bridge), Docker's image format (keeps HEALTHCHECK).
    log="$(mktemp "${TMPDIR:-/tmp}/infera-build-$name.XXXXXX")"
    if ! podman build --network host --format docker "${args[@]}" "$ROOT" >"$log" 2>&1; then
      tail -40 "$log" >&2
      echo "images.sh: building $name failed (whole log: $log)" >&2
      exit 1
    fi
    rm -f "$log"
    if [ "$PUSH" = 1 ]; then podman push "$ref"; fi
  fi
done
echo "built ${IMAGES[*]} as $REGISTRY/<name>:$TAG in $((SECONDS - started))s"
