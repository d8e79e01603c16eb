#!/usr/bin/env bash
# The test command: lint (ruff), types (mypy), unit tests, and integration tests against the
# real Docker Engine
# (the image is built from this checkout by scripts/build-images.sh; warm builds take seconds).
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh tests/unit # a subset (any pytest arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [[ ! -x $VENV/bin/python ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

# No registry here: testcontainers' Ryuk reaper cannot be pulled; fixtures clean up by label.
export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_CONNECTION_MODE=docker_host

bash scripts/install-chromium.sh   # the report's browser test (quiet, instant when installed)

"$VENV/bin/ruff" check launcher tests benchmarks
"$VENV/bin/mypy"   # [tool.mypy] in pyproject.toml: the launcher package
"$VENV/bin/python" -m pytest "${@:-tests}"
