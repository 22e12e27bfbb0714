#!/usr/bin/env bash
# Checks the Helm chart offline: helm lint (default + profiles), helm template for the
# default, trial and GPU production profiles piped through tools/k8s-validate (strict
# decoding into the Kubernetes Go types, including the embedded engine pod template), and
# that values.schema.json / the chart's `fail` checks reject every file in
# helm/testdata/invalid/ with the error its first line names ("# expect: <regex>").
#
# Uses exactly helm $HELM_VERSION (the version Chart.yaml names): the one on PATH when it is
# that version, else one installed with `go install` (needs the Go module proxy) into
# ~/.cache/infera/tools/helm-<version>/ on first run. Builds the validator into
# tools/k8s-validate/bin/. Later runs reuse both (offline, ~2 s).
# Env: HELM_VERSION (default: Chart.yaml's infera.dev/helm-version annotation), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/helm/infera"
VALIDATOR_DIR="$ROOT/tools/k8s-validate"
VALIDATOR="$VALIDATOR_DIR/bin/k8s-validate"
HELM_VERSION="${HELM_VERSION:-$(sed -n 's/^ *infera\.dev\/helm-version: *//p' "$CHART/Chart.yaml")}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

step() { printf '\n== %s\n' "$*"; }
die() { printf 'chart-check: FAIL: %s\n' "$*" >&2; exit 1; }

# --- helm: exactly the pinned version (another helm words errors differently) ---------
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/infera/tools"
HELM="$TOOLS/helm-$HELM_VERSION/helm"
on_path="$(command -v helm || true)"
if [ -n "$on_path" ] && [ "$("$on_path" version --template '{{.Version}}' 2>/dev/null || true)" = "$HELM_VERSION" ]; then
  HELM="$on_path"
elif [ ! -x "$HELM" ]; then
  step "installing helm $HELM_VERSION into $TOOLS (go install; first run only${on_path:+; the helm on PATH is another version})"
  [ -x "$GO" ] || die "helm $HELM_VERSION is needed and Go is missing ($GO) to install it"
  GOBIN="$TOOLS/helm-$HELM_VERSION" "$GO" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
echo "helm: $HELM ($("$HELM" version --short))"

# --- validator (rebuilt only when its sources changed) -----------------------------
if [ ! -x "$VALIDATOR" ] || [ -n "$(find "$VALIDATOR_DIR" -maxdepth 1 \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -newer "$VALIDATOR")" ]; then
  step "building tools/k8s-validate"
  [ -x "$GO" ] || die "Go is missing ($GO): needed once to build tools/k8s-validate"
  (cd "$VALIDATOR_DIR" && "$GO" build -o bin/k8s-validate .)
fi

# --- lint + template + strict validation ---------------------------------------------
declare -A PROFILES=(
  [default]=""
  [trial]="$CHART/values-trial.yaml"
  [gpu-production]="$CHART/values-gpu-production.yaml"
)
for name in default trial gpu-production; do
  values="${PROFILES[$name]}"
  args=()
  [ -n "$values" ] && args=(-f "$values")
  step "profile $name: helm lint --strict"
  "$HELM" lint --strict "$CHART" "${args[@]}" >"$OUT/lint-$name.txt" 2>&1 || { cat "$OUT/lint-$name.txt"; die "helm lint ($name)"; }
  grep -E '^\[(WARNING|ERROR)\]' "$OUT/lint-$name.txt" || true
  step "profile $name: helm template | k8s-validate"
  "$HELM" template infera "$CHART" --namespace infera "${args[@]}" >"$OUT/$name.yaml" || die "helm template ($name)"
  "$VALIDATOR" "$OUT/$name.yaml" || die "strict validation ($name)"
done

# --- values that must be rejected ----------------------------------------------------
step "invalid values are rejected"
shopt -s nullglob
bad_files=("$ROOT"/helm/testdata/invalid/*.yaml)
[ "${#bad_files[@]}" -gt 0 ] || die "no files in helm/testdata/invalid"
for f in "${bad_files[@]}"; do
  expect="$(sed -n '1s/^# expect: //p' "$f")"
  [ -n "$expect" ] || die "$f: first line must be '# expect: <regex>'"
  if out="$("$HELM" template infera "$CHART" -f "$f" 2>&1)"; then
    die "$(basename "$f") was accepted; expected an error matching: $expect"
  fi
  echo "$out" | grep -qE -- "$expect" || { echo "$out" >&2; die "$(basename "$f") failed, but not with: $expect"; }
  echo "rejected as expected: $(basename "$f")"
done

printf '\nchart-check: OK\n'
