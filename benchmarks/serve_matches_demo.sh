#!/usr/bin/env bash
# `dptune serve` (API + its worker, SQLite) against `dptune demo` (the engine in one process) on the built-in
# data set, 8 trials, seed 0: wall times, and whether every number agrees. docs/service.md records a run.
# Usage: bash benchmarks/serve_matches_demo.sh [WORKDIR] [PORT]
set -euo pipefail
BIN=${DPTUNE_BIN:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin}
W=${1:-/tmp/dptune-serve-check}
PORT=${2:-8765}
API=http://127.0.0.1:$PORT
rm -rf "$W" && mkdir -p "$W/demo" "$W/serve"
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
field() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

cd "$W/demo"
echo "load average before demo: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(now)
"$BIN/dptune" demo --trials 8 --json demo.json > demo.out 2> demo.err
echo "demo: $(since "$start") s"

cd "$W/serve"
echo "load average before serve: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(now)
"$BIN/dptune" serve --port "$PORT" > serve.log 2>&1 &
server=$!
trap 'kill -INT $server 2> /dev/null || true' EXIT
until curl -sf "$API/v1/health" > /dev/null; do sleep 0.2; done
echo "serve answers after $(since "$start") s"
AUTH="Authorization: Bearer $(cat dptune-data/local-api-key)"  # written by serve on its first start
start=$(now)
dataset=$(curl -sf -H "$AUTH" -X POST "$API/v1/datasets/builtin" -H 'content-type: application/json' \
  -d '{"name": "synthea-covid", "seed": 0}' | field id)
echo "built-in data set in $(since "$start") s"
start=$(now)
job=$(curl -sf -H "$AUTH" -X POST "$API/v1/jobs" -H 'content-type: application/json' \
  -d "{\"dataset_id\": \"$dataset\", \"model\": {\"learning_rate\": 0.1}, \"search\": {\"trials\": 8}}" | field id)
while status=$(curl -sf -H "$AUTH" "$API/v1/jobs/$job" | field status); [ "$status" = queued ] || [ "$status" = running ]; do
  sleep 1
done
echo "job $status $(since "$start") s after the POST"
curl -sf -H "$AUTH" "$API/v1/jobs/$job" > job.json
curl -sf -H "$AUTH" "$API/v1/jobs/$job/recommendation" > recommendation.json
curl -sf -H "$AUTH" "$API/v1/jobs/$job/recommendation?tradeoff=0.25" > recommendation-t0.25.json
curl -sf -H "$AUTH" "$API/v1/jobs/$job/result" > result.json
kill -INT "$server" && wait "$server" || true
trap - EXIT

W="$W" python3 - <<'PY'
import json, os

w = os.environ["W"]
served = json.load(open(f"{w}/serve/result.json"))
demo = json.load(open(f"{w}/demo/demo.json"))
job = json.load(open(f"{w}/serve/job.json"))
rec = json.load(open(f"{w}/serve/recommendation.json"))
rec25 = json.load(open(f"{w}/serve/recommendation-t0.25.json"))
fields = ("clip", "noise", "utility_test", "attack_accuracy", "objective", "epsilon")
largest = max(abs((a[k] or 0) - (b[k] or 0)) for a, b in zip(served["trials"], demo["trials"], strict=True) for k in fields)
print("baseline test AUC / attack:", served["baseline"]["utility_test"], served["baseline"]["attack_accuracy"],
      "| demo:", demo["baseline"]["utility_test"], demo["baseline"]["attack_accuracy"])
print("delta:", served["delta"], "| demo:", demo["delta"])
print("largest difference over 8 trials x", fields, ":", largest)
print("recommended:", rec["index"], "| demo:", demo["recommendation"]["index"],
      f"clip {rec['clip']:.3f} noise {rec['noise']:.3f} AUC {rec['utility_test']:.3f} "
      f"attack {rec['attack_accuracy']:.3f} epsilon {rec['epsilon']:.3f} bound {rec['attack_accuracy_bound']:.3f}")
print("Pareto front:", rec["pareto_front"], "| demo:", demo["pareto_front"])
print(f"at t=0.25: trial {rec25['index']}, objective {rec25['objective']:+.4f}")
print(f"job elapsed {job['elapsed_seconds']:.1f} s: baseline {served['baseline']['seconds']:.1f} s, "
      f"trials {sum(t['seconds'] for t in served['trials']):.1f} s")
print(f"demo: baseline {demo['baseline']['seconds']:.1f} s, trials {sum(t['seconds'] for t in demo['trials']):.1f} s")
PY
