#!/usr/bin/env bash
# The main job, end to end: build the image, start the reference endpoint, run humaneval and
# gsm8k through the launcher CONTAINER (sibling containers over the host's Docker socket),
# print the scores. Results land in ./results/<timestamp>-<invocation>/, owned by you.
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
start=$(date +%s)

# gsm8k data: $GSM8K_DATA_DIR, else the team's shared copy beside the clone, else the harness
# downloads it once (sha256-checked) from its public source.
data_dir=${GSM8K_DATA_DIR:-}
if [[ -z $data_dir && -f ../shared/data/gsm8k/test.jsonl ]]; then
  data_dir=$(cd ../shared/data/gsm8k && pwd)
fi

bash scripts/build-images.sh --quiet --tag "$IMAGE"

cleanup() {
  docker rm -f "$ENDPOINT" >/dev/null 2>&1 || true
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
docker network create "$NETWORK" >/dev/null

data_mount=() data_args=() override=()
if [[ -n $data_dir ]]; then
  data_mount=(-v "$data_dir:/data/gsm8k:ro")
  data_args=(--dataset-dir /data/gsm8k)
  override=(-o evaluation.tasks.1.dataset_dir=/data/gsm8k)
fi

echo "== reference endpoint (not a model): accuracy $ACCURACY"
docker run -d --name "$ENDPOINT" --network "$NETWORK" --init "${data_mount[@]}" "$IMAGE" \
  reference-endpoint --port 8000 --accuracy "$ACCURACY" "${data_args[@]}" >/dev/null
for _ in $(seq 1 50); do
  if docker exec "$ENDPOINT" python -c \
      "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=1)" \
      >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done

mkdir -p results   # created by you, so the results are yours
echo "== launcher container: humaneval + gsm8k, $LIMIT samples each"
docker run --rm \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -v "$PWD/results:/results" \
  -v "$PWD/examples:/config:ro" \
  "${data_mount[@]}" \
  "$IMAGE" run --config /config/local_reference.yaml \
  -o execution.output_dir=/results \
  -o "evaluation.nemo_evaluator_config.config.params.limit_samples=$LIMIT" \
  "${override[@]}"
echo "== done in $(( $(date +%s) - start ))s; results under ./results/"
