"""What every power monitor hands back, below the monitors and the bench that drives them: the recorded `Trace`,
the `PowerMonitor` protocol, `PowerMonitorError`, and which logic channel carries which marker. `kws.device.ppk2`,
`kws.device.joulescope_monitor` and `kws.device.virtual_ppk2` produce these; `kws.device.power` measures with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

INFERENCE_CHANNEL = 0  # the PPK2's D0 / the Joulescope's GPI0, wired to the board's D2 (KWS_MARKER_INFERENCE_PIN)
FRONTEND_CHANNEL = 1  # D1 / GPI1, wired to the board's D3 (KWS_MARKER_FRONTEND_PIN)


class PowerMonitorError(RuntimeError):
    """The power monitor cannot be used or its trace cannot be trusted; the message says why and what to check."""


@dataclass
class Trace:
    """What a monitor recorded: current per sample (NaN where samples were lost), voltage (one value for a source
    meter, or per sample) and the logic channels (bit n = channel n) on the same clock."""

    sample_rate_hz: float
    current_a: np.ndarray
    voltage_v: np.ndarray | float
    logic: np.ndarray

    @property
    def power_w(self) -> np.ndarray:
        return self.current_a * self.voltage_v

    def channel(self, index: int) -> np.ndarray:
        return ((self.logic >> index) & 1).astype(bool)


class PowerMonitor(Protocol):
    """A monitor as `measure` drives it: configured when opened, then one continuous recording."""

    description: str  # for the report: model, mode, voltage, sample rate

    def start(self) -> None: ...

    def mark(self) -> int:
        """Samples received since start(); raises PowerMonitorError if the monitor failed meanwhile."""
        ...

    def stop(self) -> Trace: ...

    def close(self) -> None: ...
