#!/usr/bin/env bash
# Benchmark of custos-scrub: quality vs Presidio and throughput.
# Usage: bench/scrub/run.sh   (env: CORPUS=20000 LOG_MB=1024 PRESIDIO_N=2000 RUNS=3)
# Everything it creates goes to bench/out/ (gitignored).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/bench/out"
mkdir -p "$out"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
if [ ! -x "$out/venv/bin/python" ]; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q faker presidio-analyzer spacy
fi
py="$out/venv/bin/python"
"$py" "$root/bench/scrub/gen.py" "$out" --corpus "${CORPUS:-20000}" --log-mb "${LOG_MB:-1024}"
cargo build --release -q -p custos-scrub --example scrub_bench
bench="$CARGO_TARGET_DIR/release/examples/scrub_bench"
one_core="taskset -c 0"; command -v taskset >/dev/null || one_core=""
$one_core "$bench" predict "$out/corpus.jsonl" "$out/custos_pred.jsonl" > "$out/custos_time.json"
$one_core "$py" "$root/bench/scrub/presidio_eval.py" "$out/corpus.jsonl" "$out/presidio_pred.jsonl" "${PRESIDIO_N:-2000}" \
  2> "$out/presidio.stderr" > "$out/presidio_time.json"
$one_core "$bench" throughput "$out/mixed.log" "${RUNS:-3}" > "$out/tp_mixed.json"
$one_core "$bench" throughput "$out/nonascii.log" "${RUNS:-3}" > "$out/tp_nonascii.json"
"$py" "$root/bench/scrub/report.py" "$out/corpus.jsonl" "$out/custos_pred.jsonl" "$out/presidio_pred.jsonl" \
  "$out/custos_time.json" "$out/presidio_time.json" "$out/tp_mixed.json" "$out/tp_nonascii.json" | tee "$out/report.md"
