#!/usr/bin/env bash
# Evaluate and gate in CI with only docker and bash on the runner: get the launcher image
# (build it from this repo, `docker load` a tarball, or use one already present), run an
# evaluation through the launcher CONTAINER (sibling containers over the Docker socket), then
# `launcher gate` on the new run: JUnit XML, the GitHub job summary, and the gate's exit code.
# examples/ci/github-actions.yml and examples/ci/gitlab-ci.yml call this script.
#
#   bash examples/ci/eval-gate.sh --min-score 0.7             # the built-in offline example
#   bash examples/ci/eval-gate.sh --config my-eval.yaml -e NGC_API_KEY --policy gate.yaml
#
# Without --config it runs the built-in offline example: a reference endpoint (NOT a model: it
# answers correctly on a known fraction, --accuracy, default 0.8) that the script starts, and
# humaneval + custom from examples/local_reference.yaml on --limit samples (default 10), so it
# runs anywhere. With --config FILE it runs your config (an endpoint, `api_key_name: NAME`),
# and each -e NAME passes that host variable (the API key) to the launcher by name: its value
# is never on a command line, in a log or on disk.
#
# Options:
#   --config FILE        run config (paths in it and in these options: relative to the cwd)
#   -t, --task NAME      only this configured task (repeatable)
#   -o, --override K=V   config override, as `launcher run -o` (repeatable)
#   -e, --env NAME       pass the host variable NAME to the launcher by name (repeatable)
#   --limit N            limit_samples of every task (built-in example: 10)
#   --accuracy A         the reference endpoint's accuracy (built-in example only; 0.8)
#   --min-score X, --max-drop X, --baseline ID, --policy FILE
#                        the gate's thresholds (at least one of --min-score, --max-drop,
#                        --policy); --baseline is an invocation id in the results folder
#   --junit FILE         JUnit XML written by the gate (default RESULTS/gate.xml)
#   --results DIR        the output folder (default ./results; created if missing)
#   --image TAG          launcher image (default $EVAL_LAUNCHER_IMAGE, else eval-launcher:latest)
#   --load FILE          `docker load` the image from FILE instead of building (env EVAL_GATE_LOAD)
#   --no-build           use the image as it is (pulled or loaded before; env EVAL_GATE_NO_BUILD=1)
#   --dry-run            print the docker commands and exit; starts nothing
#
# Exit code: the gate's: 0 GO, 1 NO-GO (a critical threshold violated), 4 INCONCLUSIVE (a
# threshold could not be checked, e.g. a task failed and left no score); 2 bad options or
# config, 3 environment (docker unreachable, image build/load failed, a variable not set);
# 130/143 interrupted. $GITHUB_STEP_SUMMARY, when set, gets the gate's Markdown table;
# $GITHUB_OUTPUT, when set, gets verdict=, exit_code=, invocation= and junit=.
# Every container and network it starts carries the label eval-launcher.ci-run=<id> and is
# removed when it ends, also on failure or Ctrl-C.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
WS=$PWD
LABEL_KEY=eval-launcher.ci-run
RUN_ID=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PREFIX=eval-gate-$RUN_ID

say() { printf '== %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }
die() { local code=$1; shift; printf 'eval-gate.sh: error: %s\n' "$*" >&2; exit "$code"; }
need() { [[ $# -ge 2 ]] || die 2 "$1 needs a value (see --help)"; }
abspath() { [[ $1 == /* ]] && printf '%s\n' "$1" || printf '%s\n' "$WS/${1#./}"; }

CONFIG="" LIMIT="" ACCURACY=0.8 JUNIT="" RESULTS=./results BASELINE="" POLICY=""
IMAGE=${EVAL_LAUNCHER_IMAGE:-eval-launcher:latest}
LOAD=${EVAL_GATE_LOAD:-} NO_BUILD=${EVAL_GATE_NO_BUILD:-0} DRY_RUN=0
tasks=() overrides=() env_names=() thresholds=()
number='^[0-9]+([.][0-9]+)?$'
while (($#)); do
  case $1 in
    --config|-c) need "$@"; CONFIG=$2; shift ;;
    -t|--task) need "$@"; tasks+=(-t "$2"); shift ;;
    -o|--override) need "$@"; overrides+=(-o "$2"); shift ;;
    -e|--env) need "$@"
      [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die 2 "-e takes a variable NAME (not NAME=value): got '${2%%=*}...'"
      env_names+=("$2"); shift ;;
    --limit) need "$@"; [[ $2 =~ ^[1-9][0-9]*$ ]] || die 2 "--limit takes a positive integer, got '$2'"
      LIMIT=$2; shift ;;
    --accuracy) need "$@"; [[ $2 =~ $number ]] || die 2 "--accuracy takes a number in 0..1, got '$2'"
      ACCURACY=$2; shift ;;
    --min-score|--max-drop) need "$@"; [[ $2 =~ $number ]] || die 2 "$1 takes a number in 0..1, got '$2'"
      thresholds+=("$1" "$2"); shift ;;
    --baseline) need "$@"; BASELINE=$2; shift ;;
    --policy) need "$@"; POLICY=$2; shift ;;
    --junit) need "$@"; JUNIT=$2; shift ;;
    --results) need "$@"; RESULTS=$2; shift ;;
    --image) need "$@"; IMAGE=$2; shift ;;
    --load) need "$@"; LOAD=$2; shift ;;
    --no-build) NO_BUILD=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die 2 "unknown option '$1' (see --help)" ;;
  esac
  shift
done

# ------------------------------------------------------------------ checks (nothing started)
[[ ${#thresholds[@]} -gt 0 || -n $POLICY ]] \
  || die 2 "the gate has nothing to check: pass --min-score X, --max-drop X (with --baseline ID) or --policy FILE"
if [[ -n $POLICY ]]; then
  POLICY=$(abspath "$POLICY"); [[ -f $POLICY ]] || die 2 "--policy $POLICY does not exist"
fi
if [[ -n $CONFIG ]]; then
  CONFIG=$(abspath "$CONFIG"); [[ -f $CONFIG ]] || die 2 "--config $CONFIG does not exist"
fi
[[ -z $LOAD || -f $LOAD ]] || die 3 "--load $LOAD does not exist (save it with: docker save -o FILE $IMAGE)"
RESULTS=$(abspath "$RESULTS")
JUNIT=$(abspath "${JUNIT:-$RESULTS/gate.xml}")
for name in "${env_names[@]}"; do
  [[ -n ${!name+set} ]] || die 3 "-e $name: the variable $name is not set; export it first (GitHub: env: $name: \${{ secrets.$name }})"
done
for path in "$WS" "$REPO" "$RESULTS" "$JUNIT" "$CONFIG" "$POLICY" "${GITHUB_STEP_SUMMARY:-}"; do
  [[ $path != *[:,]* ]] || die 2 "$path: a path with ':' or ',' cannot be mounted with docker -v; use another folder"
done
SOCKET=/var/run/docker.sock   # as the engine sees it (with docker:dind, the service's own)
[[ ${DOCKER_HOST:-} == unix://* ]] && SOCKET=${DOCKER_HOST#unix://}

# Labels: ours, plus the caller's EVAL_LAUNCHER_LABELS (e.g. a test session's).
LABELS="${EVAL_LAUNCHER_LABELS:+$EVAL_LAUNCHER_LABELS,}$LABEL_KEY=$RUN_ID"
label_args=()
IFS=, read -r -a label_list <<<"$LABELS"
for label in "${label_list[@]}"; do [[ -n ${label// } ]] && label_args+=(--label "${label// }"); done

# Mounts at the same path inside as outside, so every path (the config's relative paths,
# the results, the JUnit file, $GITHUB_STEP_SUMMARY) means the same in the containers.
mounts=()
add_mount() {  # add_mount PATH ro|rw: skipped when PATH is under a mount that fits already
  local path=$1 mode=$2 i have
  for ((i = 1; i < ${#mounts[@]}; i += 2)); do
    have=${mounts[i]%%:*}
    if [[ $path == "$have" && $mode == rw ]]; then
      mounts[i]=$path:$path:rw; return 0   # the same folder, now writable
    fi
    if [[ $path == "$have" || $path == "$have"/* ]] && [[ $mode == ro || ${mounts[i]} == *:rw ]]; then
      return 0
    fi
  done
  mounts+=(-v "$path:$path:$mode")
}

exec 3>&1   # --dry-run prints the commands here, whatever the command's own output does
show() { printf '%q ' "$@" | sed 's/ $//' >&3; printf '\n' >&3; }
docker_() { if ((DRY_RUN)); then show docker "$@"; else docker "$@"; fi; }
# A long docker command in the background and waited for: a signal to this script runs the
# trap at once (bash defers traps while a foreground command runs), which removes the containers.
docker_wait() {
  if ((DRY_RUN)); then show docker "$@"; return 0; fi
  docker "$@" </dev/null &
  wait $!
}

# ------------------------------------------------------------------ cleanup, even on failure
cleanup() {
  ((DRY_RUN)) && return 0
  local ids
  ids=$(docker ps -aq --filter "label=$LABEL_KEY=$RUN_ID" 2>/dev/null || true)
  if [[ -n $ids ]]; then
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null 2>&1 || true
  fi
  docker network ls -q --filter "label=$LABEL_KEY=$RUN_ID" 2>/dev/null \
    | xargs -r docker network rm >/dev/null 2>&1 || true
}
outputs() {  # outputs EXIT_CODE: the step outputs for GitHub Actions
  [[ -n ${GITHUB_OUTPUT:-} ]] && ((!DRY_RUN)) || return 0
  local verdict
  case $1 in 0) verdict=GO ;; 1) verdict=NO-GO ;; 4) verdict=INCONCLUSIVE ;; *) verdict=ERROR ;; esac
  printf 'verdict=%s\nexit_code=%s\ninvocation=%s\njunit=%s\n' "$verdict" "$1" \
    "${INVOCATION:-}" "$JUNIT" >>"$GITHUB_OUTPUT"
}
on_exit() { local rc=$?; trap - EXIT; cleanup; outputs "$rc"; exit "$rc"; }
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
INVOCATION=""

if ((!DRY_RUN)); then
  command -v docker >/dev/null || die 3 "the docker CLI is not installed"
  docker info >/dev/null 2>&1 || die 3 "cannot talk to the Docker engine (DOCKER_HOST=${DOCKER_HOST:-unset})"
fi

# ------------------------------------------------------------------ 1. the launcher image
if [[ -n $LOAD ]]; then
  say "docker load -i $LOAD"
  docker_ load -q -i "$LOAD" >&2 || die 3 "docker load -i $LOAD failed"
elif [[ $NO_BUILD != 1 ]]; then
  say "building $IMAGE (scripts/build-images.sh)"
  if ((DRY_RUN)); then show bash "$REPO/scripts/build-images.sh" --quiet --tag "$IMAGE"
  else bash "$REPO/scripts/build-images.sh" --quiet --tag "$IMAGE" || die 3 "building $IMAGE failed"
  fi
fi
((DRY_RUN)) || docker image inspect "$IMAGE" >/dev/null 2>&1 \
  || die 3 "image $IMAGE is not present: build it (drop --no-build), --load FILE, or pass --image TAG"

# ------------------------------------------------------------------ 2. the built-in example's endpoint
run_args=()
if [[ -z $CONFIG ]]; then
  CONFIG=$REPO/examples/local_reference.yaml
  LIMIT=${LIMIT:-10}
  ((${#tasks[@]})) || tasks=(-t humaneval -t custom)
  network=$PREFIX endpoint=$PREFIX-refep
  run_args+=(-o "execution.extra_docker_args=--network $network"
             -o "target.api_endpoint.url=http://$endpoint:8000/v1/chat/completions"
             -o "evaluation.tasks.2.dataset_dir=$REPO/examples/data/custom")
  say "reference endpoint (not a model): accuracy $ACCURACY"
  docker_ network create "${label_args[@]}" "$network" >/dev/null
  docker_ run -d --name "$endpoint" "${label_args[@]}" --network "$network" --init \
    -v "$REPO/examples:/config:ro" "$IMAGE" reference-endpoint --port 8000 \
    --accuracy "$ACCURACY" --dataset /config/data/custom/questions.jsonl >/dev/null
  if ((!DRY_RUN)); then
    healthy=0
    for _ in $(seq 1 100); do
      if docker exec "$endpoint" python -c \
          "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=1)" \
          >/dev/null 2>&1; then
        healthy=1; break
      fi
      sleep 0.2
    done
    ((healthy)) || { docker logs --tail 20 "$endpoint" >&2 || true; die 3 "the reference endpoint did not become healthy in 20 s"; }
  fi
fi
[[ -z $LIMIT ]] || run_args+=(-o "evaluation.nemo_evaluator_config.config.params.limit_samples=$LIMIT")

# ------------------------------------------------------------------ 3. the evaluation
((DRY_RUN)) || mkdir -p "$RESULTS" "$(dirname "$JUNIT")"   # created by you: the files are yours
add_mount "$RESULTS" rw
add_mount "$WS" ro
add_mount "$REPO" ro
add_mount "$(dirname "$CONFIG")" ro
env_args=(-e "EVAL_LAUNCHER_IMAGE=$IMAGE" -e "EVAL_LAUNCHER_LABELS=$LABELS")
for name in "${env_names[@]}"; do env_args+=(-e "$name"); done   # by name: docker reads the value
say "launcher container: run --config $CONFIG${LIMIT:+, up to $LIMIT samples per task}"
launcher=$PREFIX-launcher
rc=0
docker_wait run --name "$launcher" "${label_args[@]}" -v "$SOCKET:/var/run/docker.sock" \
  "${mounts[@]}" -w "$WS" "${env_args[@]}" "$IMAGE" \
  run --config "$CONFIG" -o "execution.output_dir=$RESULTS" "${tasks[@]}" "${run_args[@]}" \
  "${overrides[@]}" || rc=$?
if ((DRY_RUN)); then
  INVOCATION="<invocation id>"
else
  INVOCATION=$(docker logs "$launcher" 2>&1 | sed -n 's/^invocation \([0-9a-f]\{16\}\):.*/\1/p' | tail -n 1)
  docker rm -f "$launcher" >/dev/null 2>&1 || true
fi
case $rc in
  0|1) ;;                      # 1: some task failed; the gate says what that means
  2|3|130|143) exit "$rc" ;;   # config / environment error (its line is above), interrupted
  *) die 3 "the launcher container exited with $rc" ;;
esac
[[ -n $INVOCATION ]] || die 3 "the launcher printed no invocation id (exit $rc)"

# ------------------------------------------------------------------ 4. the gate
gate_args=(gate "$INVOCATION" --output-dir "$RESULTS" --junit "$JUNIT" "${thresholds[@]}")
[[ -z $BASELINE ]] || gate_args+=(--baseline "$BASELINE")
[[ -z $POLICY ]] || { gate_args+=(--policy "$POLICY"); add_mount "$POLICY" ro; }
add_mount "$(dirname "$JUNIT")" rw
summary_args=()
if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
  # The file itself, at the same path: the gate appends its table to it.
  ((DRY_RUN)) || touch "$GITHUB_STEP_SUMMARY"
  summary_args=(-v "$GITHUB_STEP_SUMMARY:$GITHUB_STEP_SUMMARY:rw" -e GITHUB_STEP_SUMMARY)
fi
say "gate on invocation $INVOCATION"
rc=0
# As you (--user), so the JUnit file and the summary are yours; no Docker socket needed.
docker_wait run --rm --name "$PREFIX-gate" "${label_args[@]}" --user "$(id -u):$(id -g)" \
  "${mounts[@]}" "${summary_args[@]}" -w "$WS" "$IMAGE" "${gate_args[@]}" || rc=$?
((DRY_RUN)) || say "verdict: exit $rc; JUnit: $JUNIT; results: $RESULTS/"
exit "$rc"
