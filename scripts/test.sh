#!/usr/bin/env bash
# Installs everything the tests need (incl. the Cortex-M4 toolchain and QEMU) and runs lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check host tests scripts
exec .venv/bin/pytest -q "$@"
