#!/usr/bin/env bash
# Debian's chromium, for the headless-browser test of `launcher report`
# (tests/integration/test_report.py). Idempotent: does nothing when `chromium` is on PATH.
#
#   bash scripts/install-chromium.sh
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no chromium on PATH and no apt-get: install a Chromium browser" \
       "as 'chromium' (the report test drives it headless)" >&2
  exit 3
fi
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-chromium: not root and no sudo: run 'apt-get install -y chromium' as root" >&2
    exit 3
  fi
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" apt-get -qq -o DPkg::Lock::Timeout=300)  # wait for another apt, not fail
echo "install-chromium: installing Debian's chromium (once)" >&2
if ! "${APT[@]}" install -y --no-install-recommends chromium >/dev/null 2>&1; then
  "${APT[@]}" update >/dev/null   # a fresh machine has no package lists yet
  "${APT[@]}" install -y --no-install-recommends chromium >/dev/null
fi
command -v chromium >/dev/null
