"""Joulescope JS220 through `pyjoulescope_driver` (optional: `pip install -e '.[joulescope]'`, version 1.12.0), for
`kws bench --power joulescope[:SERIAL]`.

Written against the driver's documented publish/subscribe API and the source it ships (binding.pyx, record.py):
with 1.12.0 installed it loads, opens the driver and reports that no JS220 is connected, but it has **never talked
to a Joulescope** (there is none here); docs/energy.md lists what is unverified. The device path is `u/js220/<serial>`;
the settings published are `s/i/range/mode` = auto, `s/v/range/mode` = auto and `h/fs` (the output sample rate);
current, voltage and the general-purpose inputs GPI0 (inference marker) and GPI1 (front-end marker) stream on
`s/i/!data`, `s/v/!data`, `s/gpi/0/!data` and `s/gpi/1/!data` once their `.../ctrl` topic is 1. Each message
carries `sample_id` (in samples of the device's full rate `sample_rate`), `decimate_factor` and `data` (float32,
or for the GPIs one bit per sample packed little-endian). The Joulescope measures voltage itself, so power is
current x voltage sample by sample.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from kws.device.power_trace import FRONTEND_CHANNEL, INFERENCE_CHANNEL, PowerMonitorError, Trace

SAMPLE_RATE_HZ = 100_000  # enough for 2 ms front-end pulses; the full 1 MHz would be 8 MB/s of float32 pairs
STALL_S = 2.0
_SIGNALS = {"current": "s/i", "voltage": "s/v", "gpi0": "s/gpi/0", "gpi1": "s/gpi/1"}


class _Stream:
    """One signal's messages, placed by sample id."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, np.ndarray]] = []  # (first sample id at the output rate, samples)
        self.first_raw: int | None = None  # sample id of the first sample, device full-rate units
        self.decimate = 1
        self.count = 0

    def add(self, value: dict, packed_bits: bool) -> None:
        data = np.asarray(value["data"])
        if packed_bits:
            data = np.unpackbits(data.astype(np.uint8), bitorder="little")
        if self.first_raw is None:
            self.first_raw, self.decimate = int(value["sample_id"]), int(value["decimate_factor"])
        self.chunks.append(((int(value["sample_id"]) - self.first_raw) // self.decimate, data))
        self.count += len(data)

    def array(self, fill: float) -> np.ndarray:
        """Contiguous samples from the first one, gaps (lost messages) filled."""
        length = max((start + len(data) for start, data in self.chunks), default=0)
        out = np.full(length, fill, np.float64)
        for start, data in self.chunks:
            out[start:start + len(data)] = data
        return out


class Joulescope:
    """An opened JS220: `start()`, `mark()`, `stop()` give one continuous recording."""

    def __init__(self, serial_number: str | None) -> None:
        try:
            from pyjoulescope_driver import Driver
        except ImportError:
            raise PowerMonitorError("--power joulescope needs pyjoulescope_driver: pip install -e '.[joulescope]' "
                                    "(pyjoulescope_driver==1.12.0; optional, not installed with nano-kws)") from None
        self._driver = Driver()
        paths = sorted(p for p in self._driver.device_paths() if "/js220/" in p)
        if serial_number:
            paths = [p for p in paths if p.lower().endswith("/" + serial_number.lower())]
        if len(paths) != 1:
            self._driver.finalize()
            found = "no JS220" if not paths else "several JS220s (" + ", ".join(paths) + ")"
            raise PowerMonitorError(f"{found} found by pyjoulescope_driver: connect one or name it with "
                                    "--power joulescope:SERIAL")
        self.path = paths[0]
        self._driver.open(self.path, mode="defaults")
        self._driver.publish(f"{self.path}/s/i/range/mode", "auto")
        self._driver.publish(f"{self.path}/s/v/range/mode", "auto")
        self._driver.publish(f"{self.path}/h/fs", SAMPLE_RATE_HZ)
        self._streams = {name: _Stream() for name in _SIGNALS}
        self._lock = threading.Lock()
        self._last_data = 0.0
        self._callbacks = {}
        self.description = f"Joulescope {self.path}, {SAMPLE_RATE_HZ // 1000} ksps (unverified on hardware)"

    def _on_data(self, name: str):  # noqa: ANN202 - the driver's callback signature
        def on_data(topic: str, value: dict) -> None:
            with self._lock:
                self._streams[name].add(value, packed_bits=name.startswith("gpi"))
                self._last_data = time.monotonic()

        return on_data

    def start(self) -> None:
        self._last_data = time.monotonic()
        for name, prefix in _SIGNALS.items():
            callback = self._callbacks[name] = self._on_data(name)
            self._driver.subscribe(f"{self.path}/{prefix}/!data", ["pub"], callback)
            self._driver.publish(f"{self.path}/{prefix}/ctrl", 1)

    def mark(self) -> int:
        if time.monotonic() - self._last_data > STALL_S:
            raise PowerMonitorError(f"the Joulescope {self.path} sent no samples for over {STALL_S:g} s "
                                    "(disconnected?): no energy is reported")
        with self._lock:
            return self._streams["current"].count

    def stop(self) -> Trace:
        self.mark()
        self._unsubscribe()
        with self._lock:
            current, voltage = self._streams["current"], self._streams["voltage"]
            current_a, voltage_v = current.array(np.nan), voltage.array(np.nan)
            # Every signal on the current's clock, by sample id (device full-rate units).
            raw = current.first_raw + np.arange(len(current_a)) * current.decimate
            voltage_v = self._on_clock(voltage, voltage_v, raw, np.nan)
            logic = np.zeros(len(current_a), np.uint8)
            for name, channel in (("gpi0", INFERENCE_CHANNEL), ("gpi1", FRONTEND_CHANNEL)):
                stream = self._streams[name]
                if stream.first_raw is not None:
                    bits = self._on_clock(stream, stream.array(0), raw, 0).astype(np.uint8)
                    logic |= bits << channel
        return Trace(SAMPLE_RATE_HZ, current_a, voltage_v, logic)

    @staticmethod
    def _on_clock(stream: _Stream, samples: np.ndarray, raw: np.ndarray, fill: float) -> np.ndarray:
        if stream.first_raw is None:
            return np.full(len(raw), fill)
        index = (raw - stream.first_raw) // stream.decimate
        inside = (index >= 0) & (index < len(samples))
        out = np.full(len(raw), fill, np.float64)
        out[inside] = samples[index[inside]]
        return out

    def _unsubscribe(self) -> None:
        for name, prefix in _SIGNALS.items():
            if name in self._callbacks:
                self._driver.publish(f"{self.path}/{prefix}/ctrl", 0)
                self._driver.unsubscribe(f"{self.path}/{prefix}/!data", self._callbacks.pop(name))

    def close(self) -> None:
        self._unsubscribe()
        self._driver.close(self.path)
        self._driver.finalize()
