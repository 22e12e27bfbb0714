#!/usr/bin/env bash
# The console tests drive Debian's Chromium headless (playwright-core, executablePath
# /usr/bin/chromium). Installs the `chromium` package when it is missing; does nothing otherwise.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "Chromium is not installed: run 'sudo apt-get install chromium' (Debian/Ubuntu), or this script as root." >&2
  exit 1
fi
echo "installing Debian's chromium (apt-get)…"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
