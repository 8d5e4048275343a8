"""Paths as the project records and prints them: relative, so a model card or a log line means the same on another
machine and never carries this one's directory layout."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
# The shipped default model: what `pio run` builds (platformio.ini's custom_kws_model) and the tools' default.
DEFAULT_MODEL = REPO_ROOT / "models" / "speech_commands_12"
# Where `pio pkg install -e nano33ble` puts the pinned TFLM Arduino library (platformio.ini's lib_deps); ignored by git.
TFLM_LIBRARY = REPO_ROOT / ".pio" / "libdeps" / "nano33ble" / "Chirale_TensorFLowLite"


def repo_relative(path: str | Path) -> str:
    """`path` relative to the repository root (`models/x/report`, `../shared/data/...`), as the recipes run there."""
    return os.path.relpath(Path(path).resolve(), REPO_ROOT)


def shown(path: str | Path) -> str:
    """How a tool prints a file the user named: relative to the working directory when it is below it (basenames
    are ambiguous in the Speech Commands layout), else as given."""
    relative = os.path.relpath(Path(path).absolute())
    return relative if not relative.startswith("..") else str(path)


def portable(value: object) -> object:
    """A model card's value with every absolute path made repository-relative: in a string that is a path, and in
    each argument of a recorded `kws ...` command line (`--out=/x` too). Other values are returned unchanged."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item) for item in value]
    if not isinstance(value, str):
        return value
    if value.startswith("kws "):
        return shlex.join(_portable_argument(argument) for argument in shlex.split(value))
    return repo_relative(value) if os.path.isabs(value) else value


def _portable_argument(argument: str) -> str:
    option, equals, path = argument.partition("=")
    if equals and option.startswith("--") and os.path.isabs(path):
        return f"{option}={repo_relative(path)}"
    return repo_relative(argument) if os.path.isabs(argument) else argument
