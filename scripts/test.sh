#!/usr/bin/env bash
# Installs everything the tests need (incl. the Cortex-M4 toolchain and QEMU) and runs lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
.venv/bin/ruff check host tests scripts
# Flash and RAM of the portable core on the Cortex-M4 (text/data/bss), for the CI log.
make -s -C firmware/test size
exec .venv/bin/pytest -q "$@"
