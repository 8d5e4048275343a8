"""Constants read from the firmware's own sources, so host-side checks cannot drift from what the board compiles.

The package is installed editable (`pip install -e .`): the firmware sources sit beside it in the repository, as
they do for `kws.board.core`, which compiles them.
"""

from __future__ import annotations

import re
from functools import cache

from kws.common.paths import REPO_ROOT

FIRMWARE_DIR = REPO_ROOT / "firmware"


@cache
def constant(source: str, name: str) -> int:
    """An integer the firmware declares as `#define NAME 123u` or `constexpr T NAME = 123;` (decimal or hex);
    `source` is relative to firmware/, e.g. "lib/kws_core/kws_recognizer.h"."""
    path = FIRMWARE_DIR / source
    number = r"(0[xX][0-9a-fA-F]+|\d+)[uUlL]*"
    pattern = rf"(?:#define\s+{name}\s+{number}\b|constexpr\s+\w+\s+{name}\s*=\s*{number}\s*;)"
    match = re.search(pattern, path.read_text())
    if match is None:
        raise ValueError(f"{path}: no integer constant {name}")
    return int(match.group(1) or match.group(2), 0)


@cache
def make_default(makefile: str, name: str) -> str:
    """The default a firmware Makefile gives a variable (`NAME ?= value`); `makefile` is relative to firmware/."""
    path = FIRMWARE_DIR / makefile
    match = re.search(rf"^{name}\s*\?=\s*(\S+)\s*$", path.read_text(), flags=re.M)
    if match is None:
        raise ValueError(f"{path}: no default for {name}")
    return match.group(1)


def stats_interval_s() -> float:
    """How often the board sends STATS, and updates its Bluetooth LE stats value (main.cpp)."""
    return constant("src/main.cpp", "kStatsEveryMs") / 1000


def hello_interval_s() -> float:
    """How often the board repeats HELLO until a host frame arrives (main.cpp)."""
    return constant("src/main.cpp", "kHelloEveryMs") / 1000


def host_timeout_s() -> float:
    """How long host-stream mode waits for a frame before the input returns to the microphone (host_stream.cpp)."""
    return constant("src/host_stream.cpp", "kTimeoutMs") / 1000


M4_CHECK_MAKEFILE = "test/m4_model/Makefile"


def board_build_flags() -> tuple[str, str]:
    """The board build's optimisation level and float ABI, as the M4 check's Makefile records them."""
    return make_default(M4_CHECK_MAKEFILE, "OPT"), make_default(M4_CHECK_MAKEFILE, "FLOAT_ABI")
