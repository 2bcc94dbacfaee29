#!/usr/bin/env bash
# Run every benchmark with its full settings; JSON + text results into OUTDIR
# (default ~/.cache/blurfaces-bench/results: outside the repository).
#   bench/run_all.sh [OUTDIR]
# Run on an otherwise idle machine, from anywhere; uses the repository's .venv.
set -euo pipefail
OUT="$(realpath -m "${1:-${BLURFACES_BENCH_CACHE:-$HOME/.cache/blurfaces-bench}/results}")"
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
mkdir -p "$OUT"
$PY -m bench.common info > "$OUT/machine.json"
$PY -m bench.throughput -n 3 --json "$OUT/throughput.json" | tee "$OUT/throughput.txt"
$PY -m bench.scaling -n 3 --json "$OUT/scaling.json" | tee "$OUT/scaling.txt"
$PY -m bench.stitch -n 5 --json "$OUT/stitch.json" | tee "$OUT/stitch.txt"
$PY -m bench.memory --json "$OUT/memory.json" | tee "$OUT/memory.txt"
$PY -m bench.lambda_sizing -n 2 --json "$OUT/lambda_sizing.json" > "$OUT/lambda_sizing.txt"
