#!/usr/bin/env bash
# Builds the Kubernetes control plane the tests run (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl of the same release, kwok) from the Go
# modules pinned in tools/kube/go.mod, once per machine, into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/infera/k8s/<key>/
# where <key> names the versions and a hash of go.mod/go.sum, so every worktree and CI reuse
# one build and a version change builds afresh. Prints the folder on its last line.
# A cold build (empty Go build cache) takes long on 2 cores; later runs return at once.
# Env: GO (default: go on PATH, else /usr/local/go/bin/go), INFERA_K8S_BIN (use this folder
# as is, build nothing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [ -n "${INFERA_K8S_BIN:-}" ]; then echo "$INFERA_K8S_BIN"; exit 0; fi

# The versions, read from go.mod (one place to change them).
modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$HERE/go.mod"; }
K8S="$(modver k8s.io/kubernetes)"
ETCD="$(modver go.etcd.io/etcd/server/v3)"
KWOK="$(modver sigs.k8s.io/kwok)"
[ -n "$K8S" ] && [ -n "$ETCD" ] && [ -n "$KWOK" ] || { echo "tools/kube/build.sh: cannot read the versions from go.mod" >&2; exit 1; }
SUM="$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/build.sh" | sha256sum | cut -c1-12)"
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/infera/k8s/k8s-$K8S-etcd-$ETCD-kwok-$KWOK-$SUM"
BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() { for b in "${BINS[@]}"; do [ -x "$DEST/$b" ] || return 1; done; }
if complete; then echo "$DEST"; exit 0; fi

[ -x "$GO" ] || { echo "tools/kube/build.sh: Go is missing ($GO); it is needed once to build the control plane" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
# One build at a time per machine: a second caller waits for the first and reuses its result.
exec 9>"$DEST.lock"
flock 9
if complete; then echo "$DEST"; exit 0; fi

echo "tools/kube/build.sh: building Kubernetes $K8S, etcd $ETCD, kwok $KWOK into $DEST (first run on this machine; long on 2 cores)" >&2
TMP="$DEST.tmp.$$"
rm -rf "$TMP"; mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

minor="${K8S#v1.}"; minor="${minor%%.*}"
# What `make` in kubernetes/kubernetes stamps into the binaries: helm reads the server's
# version (the chart's kubeVersion), and kubectl warns about skew without it.
LD="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD="$LD -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
start=$(date +%s)
cd "$HERE"
nice -n 10 "$GO" build -trimpath -ldflags "$LD" -o "$TMP/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl \
  sigs.k8s.io/kwok/cmd/kwok
nice -n 10 "$GO" build -trimpath -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3
for b in "${BINS[@]}"; do [ -x "$TMP/$b" ] || { echo "tools/kube/build.sh: $b was not built" >&2; exit 1; }; done
rm -rf "$DEST"; mv "$TMP" "$DEST"
echo "tools/kube/build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$DEST"
