"""nano-kws: keyword spotting for the Arduino Nano 33 BLE Sense, from a config file to the board."""

import os
from pathlib import Path

from kws.quiet import quiet_tensorflow

__version__ = "0.1.0"

quiet_tensorflow()  # before any module imports TensorFlow


def cache_dir(kind: str) -> Path:
    """Where nano-kws caches `kind` ("features", the compiled "kws_core"): under $NANO_KWS_CACHE, else
    $XDG_CACHE_HOME/nano-kws, else ~/.cache/nano-kws."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nano-kws"
    return Path(os.environ.get("NANO_KWS_CACHE", base)) / kind
