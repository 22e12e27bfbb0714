#!/usr/bin/env bash
# Checks the Helm chart offline, in seconds: helm lint (default + profiles), helm template for
# the default, trial and GPU production profiles, and that values.schema.json / the chart's
# `fail` checks reject every file in helm/testdata/invalid/ with the error its first line
# names ("# expect: <regex>"). What a real API server makes of the result (and that it would
# refuse each "# kubernetes:" file unchecked) is test/kube's, run by `npm test`.
#
# Uses exactly helm $HELM_VERSION (the version Chart.yaml names): the one on PATH when it is
# that version, else one installed with `go install` (needs the Go module proxy) into
# ~/.cache/infera/tools/helm-<version>/ on first run (later runs: offline, ~2 s).
# Env: HELM_VERSION (default: Chart.yaml's infera.dev/helm-version annotation), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/helm/infera"
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

# --- lint + template ------------------------------------------------------------------
# What the API server makes of the rendered objects (admission, validation, the Prometheus
# Operator's CRD schemas) is tested against a real control plane in test/kube (npm test).
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
  step "profile $name: helm template"
  # The production profile's monitors need the Prometheus Operator's kinds, which a cluster would have.
  "$HELM" template infera "$CHART" --namespace infera "${args[@]}" \
    --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PodMonitor >"$OUT/$name.yaml" || die "helm template ($name)"
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
