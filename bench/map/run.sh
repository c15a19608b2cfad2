#!/usr/bin/env bash
# Benchmark `custos map check` on a map of 200 systems x 50 datasets x 20
# fields (200,000 fields). Prints the in-process median (parse + validate)
# and the wall time of the CLI on the same file (median of 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
map="$(mktemp --suffix=.yaml)"
trap 'rm -f "$map"' EXIT
cargo run --quiet --release -p custos-map --example map_bench -- 7 "$map"
if cargo build --quiet --release -p custos 2>/dev/null; then
  bin="$CARGO_TARGET_DIR/release/custos"
  times=()
  for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    "$bin" map check "$map" >/dev/null || true
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  echo "custos map check (CLI, wall): median ${median} ms of ${times[*]}"
else
  echo "custos binary did not build; CLI timing skipped"
fi
