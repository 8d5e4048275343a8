"""Silencing what native libraries print straight to the process's stderr (file descriptor 2).

TensorFlow's shared library logs start-up notices when it is loaded (oneDNN, CUDA drivers: written before its log
level is even read), the converter prints its quantization settings, and TFLM reports every failed allocation
while `runtime.measure_arena` searches for the smallest arena; none of it goes through Python, so only redirecting
the descriptor itself keeps it out of the user's terminal. Python's own warnings and errors still reach it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType


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


@contextlib.contextmanager
def native_stderr_only_silenced() -> Iterator[None]:
    """Drops what native code writes to fd 2 for the duration, while Python's sys.stderr (warnings, errors,
    progress) still reaches the terminal through a copy of the original descriptor."""
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                         errors="backslashreplace")
    python_stderr = sys.stderr
    if _writes_to_fd2(python_stderr):  # else it is already elsewhere (a file, a test's capture): leave it
        sys.stderr = terminal
    try:
        with native_stderr_silenced():
            yield
    finally:
        sys.stderr = python_stderr
        terminal.close()


def _writes_to_fd2(stream: object) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


class _SilentFirstImport(importlib.abc.MetaPathFinder):
    """Runs the import of one module with native stderr silenced, then steps aside. Only a real import removes it:
    `importlib.util.find_spec` (kws.frontends.microfrontend locates TensorFlow's files with it) passes through."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._finding = False

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name or self._finding:
            return None
        self._finding = True  # the other finders locate it
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def silenced(module: ModuleType) -> None:
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                with native_stderr_silenced():
                    exec_module(module)

            spec.loader.exec_module = silenced
        return spec


def quiet_tensorflow() -> None:
    """Before TensorFlow is imported: its C++ log below FATAL off (TF_CPP_MIN_LOG_LEVEL=3 unless the user set a
    level, e.g. 0 to see everything), and the notices its library prints on loading, before that level is read,
    dropped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _SilentFirstImport("tensorflow"))
