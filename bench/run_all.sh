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
$PY bench/common.py info > "$OUT/machine.json"
$PY bench/throughput.py -n 3 --json "$OUT/throughput.json" | tee "$OUT/throughput.txt"
$PY bench/scaling.py -n 3 --json "$OUT/scaling.json" | tee "$OUT/scaling.txt"
$PY bench/stitch.py -n 5 --json "$OUT/stitch.json" | tee "$OUT/stitch.txt"
$PY bench/memory.py --json "$OUT/memory.json" | tee "$OUT/memory.txt"
$PY bench/lambda_sizing.py -n 2 --json "$OUT/lambda_sizing.json" > "$OUT/lambda_sizing.txt"
