"""A one-line progress indicator on stderr for long-running work (downloads, synthesis, features, training).

On a terminal the line is redrawn in place with `\\r`; when stderr is not a terminal (CI logs, pipes) nothing is
printed until `close`, which writes one summary line, so logs stay readable.

Kept rather than tqdm (4.70.1, already installed with ai-edge-litert) for that log behaviour, measured: into a file
tqdm redraws as it does on a terminal (12 `\\r`-separated redraws, 687 characters, for a one-second loop of 50
steps), and with `disable=None` it writes nothing at all on a non-terminal, not even the summary; the summary line
would have to be written here anyway, around a tqdm used only on terminals.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

# Redrawing more often than this only costs time (a terminal cannot show it anyway).
_REDRAW_SECONDS = 0.1


class Progress:
    """Counts work done towards `total` (None when unknown) and shows it as `label: done/total (pct%)`.

    `unit` names what is counted ("clips", "epochs"); `unit="B"` formats counts as bytes (kB, MB, GB).
    `enabled=False` prints nothing at all (for callers with a `progress` switch). Use it as a context manager,
    or call `close` once.
    """

    def __init__(
        self,
        total: int | None,
        label: str,
        *,
        unit: str = "",
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._live = enabled and self._stream.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Adds `n` to the work done and redraws the line (at most every 0.1 s, and always at the end)."""
        self.done += n
        if not self._live:
            return
        now = time.monotonic()
        if now - self._last_draw >= _REDRAW_SECONDS or self.done == self.total:
            self._last_draw = now
            self._stream.write(f"\r{self._describe()}\x1b[K")
            self._stream.flush()

    def close(self) -> None:
        """Writes the final summary line (with elapsed time); further calls do nothing."""
        self._finish("done")

    def _finish(self, outcome: str) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._enabled:
            return
        line = f"{self._describe()}, {outcome} in {time.monotonic() - self._start:.1f} s"
        # On a terminal the summary overwrites the live line; elsewhere it is the only line written.
        self._stream.write(f"\r{line}\x1b[K\n" if self._live else f"{line}\n")
        self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A summary that says "stopped" keeps a failed run from looking complete in a log.
        self._finish("done" if exc_type is None else "stopped")

    def _describe(self) -> str:
        done = self._format(self.done)
        if self.total is None:
            return f"{self.label}: {done}{self._suffix()}"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.label}: {done}/{self._format(self.total)}{self._suffix()} ({percent:.0f}%)"

    def _suffix(self) -> str:
        return f" {self.unit}" if self.unit and self.unit != "B" else ""

    def _format(self, count: int) -> str:
        if self.unit != "B":
            return str(count)
        for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if count >= size:
                return f"{count / size:.1f} {unit}"
        return f"{count} B"
