#!/usr/bin/env bash
# Makes the Node.js base image on a machine that cannot pull one: a minimal Debian bookworm
# root filesystem from debootstrap (Debian's packages), Node.js from the npm registry's
# node-linux-<arch> package and npm from its npm package, imported into podman as
# localhost/infera/node:<node>-bookworm. It stands in for node:<node>-bookworm-slim through the
# Dockerfile's NODE_IMAGE argument (deploy/images.sh does that with NODE_IMAGE=local).
#
#   deploy/base-image.sh        # prints the image reference; builds it only when missing
#
# Cached per machine in podman's storage (deploy/engine.sh: $INFERA_IMAGES_CACHE/storage), keyed
# by the versions below and this script's own content: a change here makes a new image.
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=engine.sh
. "$ROOT/deploy/engine.sh"
infera_engine_check
infera_engine_env

NODE_VERSION=20.20.2
NPM_VERSION=10.8.2 # the npm that Node.js 20.20 ships with
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the npm registry publishes for these versions (npm checks its download against it too).
declare -A NODE_INTEGRITY=(
  [x64]="sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ=="
  [arm64]="sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg=="
)
NPM_INTEGRITY="sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w=="

case "$(dpkg --print-architecture)" in
  amd64) NODE_ARCH=x64 ;;
  arm64) NODE_ARCH=arm64 ;;
  *) echo "base-image.sh: no node-linux package for $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
RECIPE="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
IMAGE="localhost/infera/node:$NODE_VERSION-$SUITE"

cached() { [ "$(podman image inspect --format '{{index .Labels "io.infera.base.recipe"}}' "$IMAGE" 2>/dev/null || true)" = "$RECIPE" ]; }
if cached; then
  echo "$IMAGE"
  exit 0
fi
# One checkout makes it; another that asks at the same time waits and then finds it.
mkdir -p "$INFERA_IMAGES_CACHE"
exec 8>"$INFERA_IMAGES_CACHE/base.lock"
flock 8
if cached; then
  echo "$IMAGE"
  exit 0
fi

for tool in debootstrap npm tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "base-image.sh: $tool is needed (deploy/engine.sh install)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "base-image.sh: debootstrap needs root" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/infera-base.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
rootfs="$WORK/rootfs"
started=$SECONDS

echo "base-image.sh: debootstrap $SUITE (minbase) from $MIRROR" >&2
# tini: PID 1 in every infera image (forwards signals, reaps children); ca-certificates for TLS.
debootstrap --variant=minbase --include=tini,ca-certificates --components=main "$SUITE" "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -20 "$WORK/debootstrap.log" >&2
  exit 1
}
# What a slim image leaves out: package lists and caches, documentation, translations.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/etc/machine-id
: >"$rootfs/etc/machine-id"

echo "base-image.sh: node-linux-$NODE_ARCH@$NODE_VERSION and npm@$NPM_VERSION from the npm registry" >&2
(
  cd "$WORK"
  npm pack --silent "node-linux-$NODE_ARCH@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null
)
check_integrity() { # file expected
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
  [ "$got" = "$2" ] || { echo "base-image.sh: $1 has integrity $got, expected $2" >&2; exit 1; }
}
check_integrity "$WORK/node-linux-$NODE_ARCH-$NODE_VERSION.tgz" "${NODE_INTEGRITY[$NODE_ARCH]}"
check_integrity "$WORK/npm-$NPM_VERSION.tgz" "$NPM_INTEGRITY"
tar -xzf "$WORK/node-linux-$NODE_ARCH-$NODE_VERSION.tgz" -C "$WORK" package/bin/node package/LICENSE
install -D -m 0755 "$WORK/package/bin/node" "$rootfs/usr/local/bin/node"
install -D -m 0644 "$WORK/package/LICENSE" "$rootfs/usr/local/share/doc/node/LICENSE"
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$WORK/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

echo "base-image.sh: importing $IMAGE" >&2
tar --numeric-owner -C "$rootfs" -cf - . | podman import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'CMD ["node"]' \
  --change "LABEL io.infera.base.recipe=$RECIPE" \
  --change "LABEL org.opencontainers.image.description=Debian $SUITE (debootstrap minbase) with Node.js $NODE_VERSION, made by infera's deploy/base-image.sh" \
  - "$IMAGE" >/dev/null

got="$(podman run --rm --network host "$IMAGE" sh -c 'node --version && npm --version && tini --version')"
echo "base-image.sh: $IMAGE ready in $((SECONDS - started))s: $(echo "$got" | tr '\n' ' ')" >&2
echo "$IMAGE"
