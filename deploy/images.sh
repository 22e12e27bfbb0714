#!/usr/bin/env bash
# Builds every infera image with one command.
#
#   deploy/images.sh                      # build gateway scheduler worker-agent engine-sim migrate
#   REGISTRY=registry.example.com/infera TAG=0.1.0 PUSH=1 PLATFORMS=linux/amd64,linux/arm64 deploy/images.sh
#   deploy/images.sh gateway scheduler    # only some
#
# Env: REGISTRY (default ghcr.io/infera, the chart's global.imageRegistry), TAG (default: the
# chart's appVersion), PUSH=1 to push (needed for multi-platform), PLATFORMS (default: the
# builder's), NODE_IMAGE to pin the base by digest (node:20.20.2-bookworm-slim@sha256:...),
# ENGINE=docker|podman (default: docker if present, else podman).
# Images are named <REGISTRY>/<name>:<TAG>, which is what the chart pulls by default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGISTRY="${REGISTRY:-ghcr.io/infera}"
TAG="${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/helm/infera/Chart.yaml")}"
PUSH="${PUSH:-0}"
PLATFORMS="${PLATFORMS:-}"
ENGINE="${ENGINE:-$(command -v docker >/dev/null 2>&1 && echo docker || echo podman)}"
ALL=(gateway scheduler worker-agent engine-sim migrate)
IMAGES=("$@")
[ "${#IMAGES[@]}" -gt 0 ] || IMAGES=("${ALL[@]}")

command -v "$ENGINE" >/dev/null 2>&1 || { echo "images.sh: neither docker nor podman found" >&2; exit 1; }

for name in "${IMAGES[@]}"; do
  dockerfile="$ROOT/deploy/docker/$name.Dockerfile"
  [ -f "$dockerfile" ] || { echo "images.sh: unknown image $name (no $dockerfile)" >&2; exit 1; }
  ref="$REGISTRY/$name:$TAG"
  args=(--file "$dockerfile" --tag "$ref" --label "org.opencontainers.image.version=$TAG"
        --label "org.opencontainers.image.revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)")
  [ -n "${NODE_IMAGE:-}" ] && args+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
  [ -n "$PLATFORMS" ] && args+=(--platform "$PLATFORMS")
  echo "==> $ref"
  if [ "$ENGINE" = docker ]; then
    if [ "$PUSH" = 1 ]; then args+=(--push); else args+=(--load); fi
    docker buildx build "${args[@]}" "$ROOT"
  else
    # podman: --platform with several values needs --manifest; keep it to one platform here.
    podman build "${args[@]}" "$ROOT"
    [ "$PUSH" = 1 ] && podman push "$ref"
  fi
done
echo "built: ${IMAGES[*]} as $REGISTRY/<name>:$TAG"
