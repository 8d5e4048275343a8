#!/usr/bin/env bash
# The main job on an offline default: install, then synthetic yes/no -> train -> int8 export -> TFLM evaluation ->
# the test clips on the virtual board -> a short report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/kws quickstart --out runs/quickstart "$@"
