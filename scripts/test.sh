#!/usr/bin/env bash
# Set up and run the whole test suite (unit, integration against moto's S3 server and state
# machine interpreter, end to end on real media fetched from PyPI).
#   scripts/test.sh            everything (what CI runs: .ci/run)
#   scripts/test.sh --fast     the fast lane: -m "not slow" (every test under ~3 s)
# Further arguments go to pytest (e.g. scripts/test.sh --fast tests/test_options.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
lane=()
if [[ "${1:-}" == "--fast" ]]; then
    lane=(-m "not slow")
    shift
fi
scripts/setup.sh
# The review page's browser test needs a headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) \
    >/dev/null 2>&1 || echo "test.sh: could not install chromium; the review page's browser test will fail" >&2
fi
.venv/bin/blurfaces fetch-model >/dev/null 2>&1 || true   # the tests fetch it too, if this failed
exec .venv/bin/python -m pytest -n 2 -q -p no:cacheprovider "${lane[@]}" "$@"
