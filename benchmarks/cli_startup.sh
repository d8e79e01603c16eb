#!/usr/bin/env bash
# CLI startup: `launcher --help` / `--version` against the reference CLI,
# `nemo-evaluator-launcher --help` / `--version` (PyPI nemo-evaluator-launcher, pinned below).
#
#   bash benchmarks/cli_startup.sh                     # 20 runs per command
#   bash benchmarks/cli_startup.sh --runs 50
#   bash benchmarks/cli_startup.sh --install-hyperfine # apt-get install hyperfine first (root)
#   bash benchmarks/cli_startup.sh --no-reference      # measure ours only
#   bash benchmarks/cli_startup.sh --no-hyperfine      # use the Python loop even if installed
#
# Self-contained: needs python3 >= 3.11 and PyPI. It creates (or reuses) two venvs under
# .venv-bench/ (gitignored): `ours` (this checkout, reinstalled on every run so it measures the
# current code) and `reference` (installed once). Each measurement is a new process (cold-ish:
# the OS file cache is warm, the interpreter is not); the first run of each command is a
# warm-up and is dropped. Uses hyperfine when installed, else a Python loop; both report the
# median. If the reference cannot be installed or does not run, it says so and still measures
# ours. Prints one line per measurement, the ratios reference/ours, and as the last line:
#   RESULT ours_ms=<ms> reference_ms=<ms|na> ratio=<reference/ours|na>        (for --help)
# preceded by RESULT_VERSION ours_ms=... reference_ms=... ratio=...           (for --version)
set -euo pipefail

# nemo-evaluator-launcher version: the newest on PyPI on 2026-11-23.
REFERENCE_VERSION="${BENCH_REFERENCE_VERSION:-0.2.6}"
RUNS="${BENCH_RUNS:-20}"
INSTALL_HYPERFINE=0
REFERENCE=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --install-hyperfine) INSTALL_HYPERFINE=1; shift ;;
    --no-reference) REFERENCE=0; shift ;;
    --no-hyperfine) export BENCH_NO_HYPERFINE=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_VENV_DIR:-$REPO/.venv-bench}"
PYTHON="${PYTHON:-python3}"
log() { echo "[cli_startup] $*" >&2; }
PIP_LOG="$(mktemp)"
quiet() {  # quiet CMD...: run with output to a log; on failure show its tail and return 1
  if "$@" >"$PIP_LOG" 2>&1; then return 0; fi
  tail -n 20 "$PIP_LOG" >&2
  return 1
}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: $PYTHON must be Python >= 3.11 (set PYTHON=...)" >&2
  exit 2
fi

make_venv() {  # make_venv DIR: create the venv if missing, with a current pip
  if [[ ! -x "$1/bin/python" ]]; then
    log "creating venv $1"
    "$PYTHON" -m venv "$1"
    quiet "$1/bin/python" -m pip install --disable-pip-version-check --upgrade pip
  fi
}

# --- ours: always reinstalled (not editable, like a user's install) --------------------------
OURS="$BENCH_DIR/ours"
make_venv "$OURS"
log "installing this checkout into $OURS"
# The build happens in a copy so the checkout gets no build/ or *.egg-info from us.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC" "$PIP_LOG"' EXIT
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/launcher" "$SRC/"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
quiet "$OURS/bin/python" -m pip install --disable-pip-version-check "$SRC"
quiet "$OURS/bin/python" -m pip install --disable-pip-version-check --force-reinstall --no-deps \
  "$SRC"
OURS_CMD="$OURS/bin/eval-launcher"
for arg in --help --version; do
  "$OURS_CMD" "$arg" >/dev/null || { echo "error: $OURS_CMD $arg failed" >&2; exit 1; }
done
OURS_VERSION="$("$OURS/bin/python" -c 'import launcher; print(launcher.__version__)')"

# --- reference: installed once, at the pinned version -----------------------------------------
REF="$BENCH_DIR/reference"
REF_CMD=""
REF_NOTE=""
if [[ "$REFERENCE" == 1 ]]; then
  installed="$("$REF/bin/python" -c 'from importlib.metadata import version as v
print(v("nemo-evaluator-launcher"))' 2>/dev/null || true)"
  if [[ -x "$REF/bin/nemo-evaluator-launcher" && "$installed" == "$REFERENCE_VERSION" ]]; then
    REF_CMD="$REF/bin/nemo-evaluator-launcher"
  else
    make_venv "$REF"
    log "installing nemo-evaluator-launcher==$REFERENCE_VERSION into $REF (first run: ~1 min)"
    if quiet "$REF/bin/python" -m pip install --disable-pip-version-check \
        "nemo-evaluator-launcher==$REFERENCE_VERSION"; then
      REF_CMD="$REF/bin/nemo-evaluator-launcher"
    else
      REF_NOTE="pip install nemo-evaluator-launcher==$REFERENCE_VERSION failed"
    fi
  fi
  for arg in --help --version; do
    if [[ -n "$REF_CMD" ]] && ! "$REF_CMD" "$arg" >/dev/null 2>&1; then
      REF_NOTE="$REF_CMD $arg exited non-zero"
      REF_CMD=""
    fi
  done
else
  REF_NOTE="skipped (--no-reference)"
fi
[[ -n "$REF_NOTE" ]] && echo "reference: NOT MEASURED: $REF_NOTE"

# --- hyperfine (optional) ---------------------------------------------------------------------
if [[ "$INSTALL_HYPERFINE" == 1 ]] && ! command -v hyperfine >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "apt-get install hyperfine"
    apt-get install -y -qq hyperfine >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq hyperfine >/dev/null 2>&1; } \
      || log "could not install hyperfine; using the Python loop"
  else
    log "--install-hyperfine needs root and apt-get; using the Python loop"
  fi
fi

echo "machine: $(nproc) cores, $(uname -sr), $("$OURS/bin/python" -V 2>&1)"
echo "ours: eval-launcher $OURS_VERSION ($OURS_CMD)"
if [[ -n "$REF_CMD" ]]; then
  echo "reference: nemo-evaluator-launcher $REFERENCE_VERSION ($REF_CMD)"
fi

# --- measure ----------------------------------------------------------------------------------
# Args: runs, then (label, program, argument) triples.
MEASURE=("ours --help" "$OURS_CMD" --help "ours --version" "$OURS_CMD" --version)
if [[ -n "$REF_CMD" ]]; then
  MEASURE+=("reference --help" "$REF_CMD" --help "reference --version" "$REF_CMD" --version)
fi
"$PYTHON" - "$RUNS" "${MEASURE[@]}" <<'PY'
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

runs = int(sys.argv[1])
triples = list(zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3], strict=True))
hyperfine = None if os.environ.get("BENCH_NO_HYPERFINE") else shutil.which("hyperfine")
tool = f"hyperfine (--warmup 1, --runs {runs}, -N)" if hyperfine else (
    f"python loop ({runs} runs after 1 dropped warm-up)")
print(f"timing: {tool}, median of wall time")
results = {}
for label, program, arg in triples:
    if hyperfine:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            proc = subprocess.run([hyperfine, "-N", "--warmup", "1", "--runs", str(runs),
                                   "--style", "none", "--export-json", out.name,
                                   shlex.join([program, arg])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode:
                sys.exit(f"hyperfine failed on {label}:\n{proc.stderr}")
            median = json.load(open(out.name))["results"][0]["median"] * 1000
    else:
        argv = [program, arg]
        times = []
        for _ in range(runs + 1):
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=os.environ)
            times.append((time.perf_counter() - start) * 1000)
        median = statistics.median(times[1:])
    results[label] = median
    print(f"{label:<20} median {median:8.1f} ms")
    sys.stdout.flush()

def fmt(value):
    return "na" if value is None else f"{value:.1f}"

lines = []
for which, tag in (("--version", "RESULT_VERSION"), ("--help", "RESULT")):
    ours = results.get(f"ours {which}")
    ref = results.get(f"reference {which}")
    ratio = None if ref is None else ref / ours
    if ratio is not None:
        print(f"ratio reference/ours {which:<9} {ratio:.2f}x")
    lines.append(f"{tag} ours_ms={fmt(ours)} reference_ms={fmt(ref)} "
                 f"ratio={'na' if ratio is None else f'{ratio:.2f}'}")
print("\n".join(lines))
PY
