#!/usr/bin/env bash
# The main job, end to end: build the image, start the reference endpoint, run the built-in
# tasks through the launcher CONTAINER (sibling containers over the host's Docker socket),
# print the scores and check them against the exact expected values. Works offline: HumanEval
# comes with the image and the custom task's questions with the repo (examples/data/custom).
# GSM8K is included when its data is at hand: $GSM8K_DATA_DIR, or the dataset cache
# ($EVAL_LAUNCHER_CACHE, default ~/.cache/eval-launcher), or downloadable (once, sha256-checked,
# into that cache); otherwise one line says it was left out and how to add it.
# Results land in ./results/<timestamp>-<invocation>/, owned by you.
#
#   bash scripts/demo.sh                 # accuracy 0.8, 20 samples per task
#   ACCURACY=1.0 LIMIT=164 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ACCURACY=${ACCURACY:-0.8}
LIMIT=${LIMIT:-20}
NETWORK=eval-launcher-demo
ENDPOINT=eval-launcher-refep
IMAGE=${EVAL_LAUNCHER_IMAGE:-eval-launcher:latest}
CACHE=${EVAL_LAUNCHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eval-launcher}
start=$(date +%s)

bash scripts/build-images.sh --quiet --tag "$IMAGE"

# GSM8K: a folder you name, else the cache (filled once from the public source if reachable).
names=(humaneval custom)
data_mount=() data_args=() override=()
gsm8k_dir=${GSM8K_DATA_DIR:-}
if [[ -z $gsm8k_dir ]]; then
  mkdir -p "$CACHE"
  if fetch=$(docker run --rm --user "$(id -u):$(id -g)" -v "$CACHE:/cache" -e EVAL_LAUNCHER_CACHE=/cache \
      "$IMAGE" datasets fetch gsm8k 2>&1); then
    gsm8k_dir=$CACHE/gsm8k
  else
    reason=${fetch##*error: }
    echo "== gsm8k left out (${reason%%; mount*}); to add it: GSM8K_DATA_DIR=<folder with GSM8K's test.jsonl> bash scripts/demo.sh"
  fi
fi
if [[ -n $gsm8k_dir ]]; then
  gsm8k_dir=$(cd "$gsm8k_dir" && pwd)
  names+=(gsm8k)
  data_mount=(-v "$gsm8k_dir:/data/gsm8k:ro")
  data_args=(--dataset-dir /data/gsm8k)
  override=(-o evaluation.tasks.1.dataset_dir=/data/gsm8k)
fi

cleanup() {
  docker rm -f "$ENDPOINT" >/dev/null 2>&1 || true
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
docker network create --label eval-launcher.demo=1 "$NETWORK" >/dev/null

echo "== reference endpoint (not a model): accuracy $ACCURACY"
docker run -d --name "$ENDPOINT" --label eval-launcher.demo=1 --network "$NETWORK" --init \
  "${data_mount[@]}" -v "$PWD/examples:/config:ro" "$IMAGE" \
  reference-endpoint --port 8000 --accuracy "$ACCURACY" "${data_args[@]}" \
  --dataset /config/data/custom/questions.jsonl >/dev/null
for _ in $(seq 1 50); do
  if docker exec "$ENDPOINT" python -c \
      "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=1)" \
      >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done

mkdir -p results   # created by you, so the results are yours
before=$(ls results)
tasks=()
for name in "${names[@]}"; do tasks+=(-t "$name"); done
echo "== launcher container: ${names[*]}, up to $LIMIT samples each"
docker run --rm \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -v "$PWD/results:/results" \
  -v "$PWD/examples:/config:ro" \
  "${data_mount[@]}" \
  "$IMAGE" run --config /config/local_reference.yaml "${tasks[@]}" \
  -o execution.output_dir=/results \
  -o "evaluation.nemo_evaluator_config.config.params.limit_samples=$LIMIT" \
  -o evaluation.tasks.2.dataset_dir=/config/data/custom \
  "${override[@]}"

# The reference endpoint answers item i right iff floor((i+1)A) - floor(iA) == 1, so of the
# first n items exactly floor(n*A) are right: every score is known in advance.
invocation=$(comm -13 <(echo "$before") <(ls results) | tail -n 1)
jobs=$(docker run --rm -v "$PWD/results:/results" "$IMAGE" status "${invocation##*-}" --json \
  --output-dir /results)
echo "== scores against the expected values (accuracy $ACCURACY)"
python3 - "$ACCURACY" "$LIMIT" "$jobs" <<'PY'
import json, math, sys
from fractions import Fraction
accuracy, limit = Fraction(sys.argv[1]), int(sys.argv[2])
sizes = {"humaneval": 164, "gsm8k": 1319, "custom": 10}
bad = 0
for job in json.loads(sys.argv[3]):
    n = min(limit, sizes[job["task"]])
    expected = math.floor(n * accuracy) / n
    ok = job["state"] == "success" and job["value"] is not None and abs(job["value"] - expected) < 1e-9
    bad += not ok
    verdict = "ok" if ok else "MISMATCH"
    print(f"   {job['task']:<10} {job['metric'] or '-'} {job['value']} expected {expected:.4f} {verdict}")
sys.exit(1 if bad else 0)
PY
echo "== done in $(( $(date +%s) - start ))s; results under ./results/$invocation/"
