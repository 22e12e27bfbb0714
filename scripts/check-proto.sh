#!/usr/bin/env bash
# `pnpm check:proto`: buf lint (STANDARD rules, buf.yaml) and buf breaking against main, so a
# change to proto/ never breaks a gateway or agent still running the previous version.
# Offline: buf reads main from this repository's own git history.
set -euo pipefail
cd "$(dirname "$0")/.."
base="$(git rev-parse --verify -q main || git rev-parse --verify -q origin/main || true)"
if [ -z "$base" ]; then
  echo "check:proto: no main (nor origin/main) in this clone to compare proto/ against; run: git fetch origin main:main" >&2
  exit 1
fi
buf lint
buf breaking --against ".git#ref=$base"
echo "proto: buf lint clean; no breaking change against main ($(git rev-parse --short "$base"))"
