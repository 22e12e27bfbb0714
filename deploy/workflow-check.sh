#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows) with actionlint, which cannot run
# them but checks their syntax, expressions, job outputs, action inputs and (when shellcheck
# is on PATH) their shell. actionlint $ACTIONLINT_VERSION is installed with `go install`
# (the Go module proxy) into ~/.cache/infera/tools/ on first run; later runs are offline.
# Env: ACTIONLINT_VERSION (default v1.7.12), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/infera/tools"
ACTIONLINT="$TOOLS/actionlint-$ACTIONLINT_VERSION/actionlint"

if [ ! -x "$ACTIONLINT" ]; then
  echo "installing actionlint $ACTIONLINT_VERSION into $TOOLS (go install; first run only)"
  [ -x "$GO" ] || { echo "workflow-check: Go is missing ($GO): needed once to install actionlint" >&2; exit 1; }
  GOBIN="$TOOLS/actionlint-$ACTIONLINT_VERSION" "$GO" install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
cd "$ROOT"
command -v shellcheck >/dev/null || echo "workflow-check: shellcheck is not on PATH: run: steps are not checked (apt-get install shellcheck)"
"$ACTIONLINT" -no-color
echo "workflows: $(find .github/workflows -name '*.y*ml' | wc -l) checked with actionlint $ACTIONLINT_VERSION"
