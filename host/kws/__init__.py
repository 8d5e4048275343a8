"""nano-kws: keyword spotting for the Arduino Nano 33 BLE Sense, from a config file to the board.

One subpackage per stage of the pipeline (docs/architecture.md draws them), from the command line down to the
problem definition:

- `cli`, `quickstart`: the `kws` command line, and the whole pipeline offline;
- `device`: serial link, monitor, stream, microphone, bench, power monitors;
- `cost`: `kws m4`, the cost model, the memory map;
- `evaluation`: runtimes, clip and streaming evaluation, calibration, report, plots;
- `training`: architectures, teacher, training loop, export to C;
- `board`: the firmware's C core through ctypes, protocol, the host mirror of the board's loop, the virtual board;
- `data`: audio I/O, datasets, download, synthesis, augmentation, cached features;
- `frontends`: the microfrontend and MFCCs the board runs, the teacher's MFCCs;
- `config`: the problem definition;
- `common`: paths, defaults, progress, quiet.

No module imports itself through others: the imports between modules form no cycle (tests/test_layers.py).
"""

import os
from pathlib import Path

from kws.common.quiet import quiet_tensorflow

__version__ = "0.1.0"

quiet_tensorflow()  # before any module imports TensorFlow


def cache_dir(kind: str) -> Path:
    """Where nano-kws caches `kind` ("features", the compiled "kws_core"): under $NANO_KWS_CACHE, else
    $XDG_CACHE_HOME/nano-kws, else ~/.cache/nano-kws."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nano-kws"
    return Path(os.environ.get("NANO_KWS_CACHE", base)) / kind
