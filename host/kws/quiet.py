"""Silencing what native libraries print straight to the process's stderr (file descriptor 2).

TensorFlow's shared library logs start-up notices when it is loaded, and TFLM reports every failed allocation
while `runtime.measure_arena` searches for the smallest arena; neither goes through Python, so only redirecting the
descriptor itself keeps them out of the user's terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Points fd 2 at /dev/null for the duration; Python's own sys.stderr is flushed first and keeps working after."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
