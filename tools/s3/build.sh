#!/usr/bin/env bash
# Builds the S3-compatible server the tests run (tools/s3/main.go over gofakes3, the
# version pinned in tools/s3/go.mod) from the Go module proxy, once per machine, into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/infera/s3/<key>/gofakes3
# where <key> names the version and a hash of the sources, so every worktree and CI reuse
# one build and a change builds afresh. Prints the binary's path on its last line.
# Env: GO (default: go on PATH, else /usr/local/go/bin/go), INFERA_S3_BIN (use this binary
# as is, build nothing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [ -n "${INFERA_S3_BIN:-}" ]; then echo "$INFERA_S3_BIN"; exit 0; fi

VER="$(grep -oE 'github.com/johannesboyne/gofakes3 v[^ ]+' "$HERE/go.mod" | head -1 | cut -d' ' -f2)"
[ -n "$VER" ] || { echo "tools/s3/build.sh: cannot read the gofakes3 version from go.mod" >&2; exit 1; }
SUM="$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/main.go" "$HERE/build.sh" | sha256sum | cut -c1-12)"
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/infera/s3/gofakes3-$VER-$SUM"
BIN="$DEST/gofakes3"

if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

[ -x "$GO" ] || { echo "tools/s3/build.sh: Go is missing ($GO); it is needed once to build the S3 test server" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
# One build at a time per machine: a second caller waits for the first and reuses its result.
exec 9>"$DEST.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

echo "tools/s3/build.sh: building gofakes3 $VER into $DEST" >&2
TMP="$DEST.tmp.$$"
rm -rf "$TMP"; mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
cd "$HERE"
nice -n 10 "$GO" build -trimpath -ldflags "-s -w" -o "$TMP/gofakes3" .
[ -x "$TMP/gofakes3" ] || { echo "tools/s3/build.sh: gofakes3 was not built" >&2; exit 1; }
rm -rf "$DEST"; mv "$TMP" "$DEST"
echo "$BIN"
