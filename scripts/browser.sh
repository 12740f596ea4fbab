#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (Playwright drives it via executablePath).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  echo "browser.sh: installing chromium from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version >/dev/null
