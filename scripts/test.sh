#!/usr/bin/env bash
# The test command: lint (ruff), types (mypy), unit tests, and integration tests against the
# real Docker Engine
# (the image is built from this checkout by scripts/build-images.sh; warm builds take seconds).
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh tests/unit # a subset (any pytest arguments)
#   TEST_WORKERS=1 bash scripts/test.sh  # one test at a time (default: 2 pytest-xdist workers,
#                                        # each test file on one worker)
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
WORKERS=${TEST_WORKERS:-2}
XDIST=()
if [[ $WORKERS != 1 ]]; then
  # Most integration tests wait on containers, not the CPU: two at a time halve the suite
  # (10:00 -> 5:09 here). A file's tests stay together on one worker: the Slurm cluster and
  # the MLflow server are started once per file's worker, and the image build takes a lock.
  XDIST=(-n "$WORKERS" --dist loadfile)
fi
"$VENV/bin/python" -m pytest "${XDIST[@]}" "${@:-tests}"
