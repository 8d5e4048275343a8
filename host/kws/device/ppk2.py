"""Nordic Power Profiler Kit II (PPK2) over its USB serial port: a small client of its command and sample protocol.

Why our own client and not `ppk2-api` (PyPI, IRNAS): it is GPL-2.0 and this project is Apache-2.0; it ignores the
per-sample counter, so samples lost on USB silently shorten time; it drops samples whose range field is out of
bounds, which misaligns the logic channel against the current; it logs and swallows serial write errors; and it
smooths every range switch with Nordic's spike filter, which changes the integral. The protocol itself is small:

- **commands** (host → PPK2), one opcode byte and its arguments: 0x19 metadata request, 0x11 power mode (1 ampere
  meter, 2 source meter), 0x0D source voltage (mV, big-endian u16), 0x0C DUT power (1 on, 0 off), 0x06 start and
  0x07 stop sampling;
- **metadata** (PPK2 → host), text lines `KEY: value` ending in `END`: per-range calibration R0..R4 (shunt ohms),
  GS, GI, O, S, I, UG, and HW, mode, VDD, IA, Calibrated;
- **samples**, 100,000 per second, each a little-endian u32: bits 0–13 ADC code, 14–16 current range (0–4),
  18–23 a counter that increments with every sample, 24–31 the logic inputs D0–D7. The current in amperes is
  UG·(x·(GS·x + GI) + S·VDD/1000 + I) with x = (4·code − O) · 1.8 / 163840 / R, the range's constants each.

A sample at full scale in the highest range is *saturated* (the current exceeds what the PPK2 measures): the
trace is refused rather than integrated. Counter gaps are lost samples: they become NaN, and a pulse that
overlaps one is left out and counted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import serial
from serial.tools import list_ports

from kws.device.power_trace import PowerMonitorError, Trace

SAMPLE_RATE_HZ = 100_000
NORDIC_USB_VID, PPK2_USB_PID = 0x1915, 0xC00A
RANGES = 5
ADC_FULL_SCALE = 0x3FFF
ADC_VOLTS_PER_COUNT = 1.8 / 163840  # per unit of 4·code, as the PPK2 firmware scales it
COUNTER_MODULUS = 64
MODIFIERS = ("R", "GS", "GI", "O", "S", "I", "UG")
METADATA_TIMEOUT_S = 2.0
STALL_S = 2.0  # no sample for this long while sampling: the PPK2 is gone or stuck
_READ_CHUNK = 65536


class Command:
    """Opcodes the host sends."""

    AVERAGE_START = 0x06
    AVERAGE_STOP = 0x07
    DEVICE_RUNNING_SET = 0x0C
    REGULATOR_SET = 0x0D
    SET_POWER_MODE = 0x11
    GET_META_DATA = 0x19


AMPERE_METER, SOURCE_METER = 1, 2


@dataclass(frozen=True)
class Calibration:
    """The per-range constants from the PPK2's metadata, each a length-5 array indexed by range."""

    r: np.ndarray
    gs: np.ndarray
    gi: np.ndarray
    o: np.ndarray
    s: np.ndarray
    i: np.ndarray
    ug: np.ndarray

    @classmethod
    def parse(cls, text: str) -> Calibration:
        """From the metadata text; ValueError if it is not PPK2 metadata (a missing constant, a bad number)."""
        values = {}
        for line in text.splitlines():
            key, separator, value = line.partition(": ")
            if separator:
                values[key.strip()] = value.strip()
        arrays = {}
        for name in MODIFIERS:
            try:
                arrays[name.lower()] = np.array([float(values[f"{name}{n}"]) for n in range(RANGES)])
            except (KeyError, ValueError) as error:
                raise ValueError(f"no valid {name}0..{name}{RANGES - 1} in the metadata ({error})") from None
        if not np.all(arrays["r"] > 0):
            raise ValueError(f"shunt resistances R0..R4 must be positive, got {arrays['r'].tolist()}")
        return cls(**arrays)

    def current_a(self, ranges: np.ndarray, codes: np.ndarray, vdd_mv: float) -> np.ndarray:
        """Amperes from range fields (0..4) and ADC codes."""
        x = (codes * 4.0 - self.o[ranges]) * ADC_VOLTS_PER_COUNT / self.r[ranges]
        return self.ug[ranges] * (x * (self.gs[ranges] * x + self.gi[ranges])
                                  + self.s[ranges] * vdd_mv / 1000 + self.i[ranges])


@dataclass(frozen=True)
class Samples:
    """Decoded samples in time order, lost ones included as NaN current (their logic held from the sample before)."""

    current_a: np.ndarray
    logic: np.ndarray
    lost: int
    saturated: np.ndarray  # indices of saturated samples


def decode(data: bytes, calibration: Calibration, vdd_mv: float) -> Samples:
    """Whole 4-byte samples of a recording; the counter's gaps become NaN samples."""
    words = np.frombuffer(data[:len(data) // 4 * 4], "<u4")
    if not len(words):
        return Samples(np.empty(0), np.empty(0, np.uint8), 0, np.empty(0, np.int64))
    codes = (words & ADC_FULL_SCALE).astype(np.int64)
    ranges = ((words >> 14) & 0x7).astype(np.int64)
    counter = ((words >> 18) & 0x3F).astype(np.int64)
    logic = (words >> 24).astype(np.uint8)
    if ranges.max() >= RANGES:
        bad = int(np.flatnonzero(ranges >= RANGES)[0])
        raise PowerMonitorError(f"sample {bad} has current range {ranges[bad]} (the PPK2 has 0..{RANGES - 1}): "
                                "this is not PPK2 sample data")
    steps = np.diff(counter) % COUNTER_MODULUS
    steps[steps == 0] = COUNTER_MODULUS  # the same counter twice: a whole counter period went missing
    positions = np.concatenate([[0], np.cumsum(steps)])
    current = np.full(positions[-1] + 1, np.nan)
    current[positions] = calibration.current_a(ranges, codes, vdd_mv)
    held = np.searchsorted(positions, np.arange(len(current)), side="right") - 1
    saturated = positions[(ranges == RANGES - 1) & (codes == ADC_FULL_SCALE)]
    return Samples(current, logic[held], int(len(current) - len(words)), saturated)


def find_port() -> str:
    """The serial port of the one connected PPK2 (USB 1915:c00a)."""
    ports = [p for p in list_ports.comports() if (p.vid, p.pid) == (NORDIC_USB_VID, PPK2_USB_PID)]
    if len(ports) != 1:
        found = "no PPK2" if not ports else "several PPK2s (" + ", ".join(p.device for p in ports) + ")"
        raise PowerMonitorError(f"{found} found by USB id {NORDIC_USB_VID:04x}:{PPK2_USB_PID:04x}: "
                                "name one with --power ppk2:PORT")
    return ports[0].device


class PPK2:
    """An opened, configured PPK2: `start()`, `mark()`, `stop()` give one continuous recording."""

    def __init__(self, port: str | None, voltage_v: float, ampere_meter: bool = False) -> None:
        self.port = port or find_port()
        self.vdd_mv = round(voltage_v * 1000)
        if not 800 <= self.vdd_mv <= 5000:
            raise PowerMonitorError(f"the PPK2 sources 0.8 to 5.0 V, not {voltage_v} V")
        try:
            self._serial = serial.Serial(self.port, timeout=0.05)
        except (serial.SerialException, OSError) as error:
            raise PowerMonitorError(f"cannot open the PPK2 port {self.port}: {error}") from None
        self._chunks: list[bytes] = []
        self._received = 0
        self._last_data = 0.0
        self._failure: Exception | None = None
        self._reading = threading.Event()
        self._reader: threading.Thread | None = None
        try:
            self._write(Command.AVERAGE_STOP)  # a measurement left running by an earlier session
            time.sleep(0.1)
            self._serial.reset_input_buffer()
            self.calibration = self._metadata()
            self._write(Command.SET_POWER_MODE, AMPERE_METER if ampere_meter else SOURCE_METER)
            self._write(Command.REGULATOR_SET, self.vdd_mv >> 8, self.vdd_mv & 0xFF)
            if not ampere_meter:
                self._write(Command.DEVICE_RUNNING_SET, 1)
        except BaseException:
            self._serial.close()
            raise
        mode = f"ampere meter on a {voltage_v:g} V supply" if ampere_meter else f"source meter at {voltage_v:g} V"
        self.description = f"Nordic PPK2 on {self.port}, {mode}, {SAMPLE_RATE_HZ // 1000} ksps"

    def _write(self, *data: int) -> None:
        try:
            self._serial.write(bytes(data))
        except (serial.SerialException, OSError) as error:
            raise PowerMonitorError(f"cannot write to the PPK2 on {self.port}: {error}") from None

    def _metadata(self) -> Calibration:
        self._write(Command.GET_META_DATA)
        answer = bytearray()
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while b"END" not in answer and time.monotonic() < deadline:
            try:
                answer += self._serial.read(4096)
            except (serial.SerialException, OSError) as error:
                raise PowerMonitorError(f"{self.port} failed while answering the PPK2 metadata request: "
                                        f"{error}") from None
        text = answer.decode("ascii", "replace")
        if b"END" not in answer:
            heard = f"it sent {text[:60]!r}" if answer else "no answer"
            raise PowerMonitorError(f"{self.port} is not a PPK2: {heard} to the metadata request within "
                                    f"{METADATA_TIMEOUT_S:g} s (a PPK2 is USB {NORDIC_USB_VID:04x}:{PPK2_USB_PID:04x};"
                                    " is this the board's port?)")
        try:
            return Calibration.parse(text)
        except ValueError as error:
            raise PowerMonitorError(f"{self.port} is not a PPK2, or an unknown firmware: its metadata has {error}") \
                from None

    # ---- recording ----

    def start(self) -> None:
        self._serial.reset_input_buffer()
        self._reading.set()
        self._last_data = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=f"ppk2 {self.port}", daemon=True)
        self._reader.start()
        self._write(Command.AVERAGE_START)

    def _read_loop(self) -> None:
        while self._reading.is_set():
            try:
                data = self._serial.read(_READ_CHUNK)
            except (serial.SerialException, OSError, TypeError) as error:
                self._failure = error
                return
            if data:
                self._chunks.append(data)
                self._received += len(data)
                self._last_data = time.monotonic()

    def _check(self) -> None:
        seconds = self._received / 4 / SAMPLE_RATE_HZ
        if self._failure is not None:
            raise PowerMonitorError(f"the PPK2 on {self.port} disconnected during the measurement, after "
                                    f"{seconds:.1f} s of samples ({self._failure}): no energy is reported")
        if time.monotonic() - self._last_data > STALL_S:
            raise PowerMonitorError(f"the PPK2 on {self.port} stopped sending samples for over {STALL_S:g} s, "
                                    f"after {seconds:.1f} s of samples")

    def mark(self) -> int:
        self._check()
        return self._received // 4

    def stop(self) -> Trace:
        self._check()
        self._write(Command.AVERAGE_STOP)
        self._reading.clear()
        if self._reader:
            self._reader.join(timeout=2)
        samples = decode(b"".join(self._chunks), self.calibration, self.vdd_mv)
        self._chunks.clear()
        if len(samples.saturated):
            first_s = samples.saturated[0] / SAMPLE_RATE_HZ
            raise PowerMonitorError(
                f"{len(samples.saturated)} samples ({len(samples.saturated) / SAMPLE_RATE_HZ * 1e3:.1f} ms, first at "
                f"{first_s:.3f} s) are at full scale in the PPK2's highest range: the current exceeded what it "
                "measures, so the energy would be understated; check the wiring for a short")
        return Trace(SAMPLE_RATE_HZ, samples.current_a, self.vdd_mv / 1000, samples.logic)

    def close(self) -> None:
        """Stops sampling and closes the port; a source meter keeps powering the board."""
        self._reading.clear()
        if self._reader:
            self._reader.join(timeout=2)
        try:
            self._serial.write(bytes([Command.AVERAGE_STOP]))
        except (serial.SerialException, OSError):
            pass  # already gone: nothing left to stop
        self._serial.close()
