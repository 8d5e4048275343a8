"""A virtual Nordic PPK2 on a pseudo-terminal: `kws bench --power ppk2:PATH` cannot tell it from the real one.

It answers the PPK2's commands and streams samples in its format (`kws.device.ppk2` documents both): 100,000 samples per
virtual second, each encoded through the inverse of the calibration formula with the calibration constants it
reports, so the host's decoding is exercised with non-trivial gains and offsets.

The current is a model of the board whose stages the virtual board reports (`VirtualBoard(stage_listener=...)`,
called where the firmware raises its marker pins): idle current, and for each front-end stride and each inference
a pulse of known length and current with a ripple and noise; the logic channels D0 (inference) and D1 (front end)
are high for exactly those pulses, as the wired marker pins would be. Every pulse's true energy is kept in
`known`, so a test can compare what the host recovers with what was put in. Pulses happen in sequence on a
virtual clock: stage pulses last their board duration however fast the host computed them, and idle samples fill
the gaps so that virtual time keeps up with the wall clock.

Faults for tests: `disconnect()` (the port disappears), `saturate(n)` (n samples at full scale in the top range),
`marker_wired=False` (current pulses with the logic channels left low).
"""

from __future__ import annotations

import collections
import errno
import os
import pty
import select
import threading
import time
import tty
from dataclasses import dataclass

import numpy as np

from kws.device.ppk2 import (
    ADC_FULL_SCALE,
    ADC_VOLTS_PER_COUNT,
    AMPERE_METER,
    COUNTER_MODULUS,
    RANGES,
    SAMPLE_RATE_HZ,
    SOURCE_METER,
    Calibration,
    Command,
)

# A calibration with every constant in play (the quadratic gain, offsets, the VDD-dependent term), of the sizes a
# real PPK2 reports.
METADATA = """Calibrated: 1
R0: 1025.1200
R1: 101.2300
R2: 10.2100
R3: 0.9470
R4: 0.0452
GS0: 0.0000
GS1: 95.4000
GS2: 16.2000
GS3: 2.3100
GS4: 0.0710
GI0: 1.0000
GI1: 0.9712
GI2: 0.9634
GI3: 0.9541
GI4: 0.9598
O0: 108.5000
O1: 74.1000
O2: 63.9000
O3: 51.2000
O4: 86.7000
VDD: 3300
HW: 9173
mode: 2
S0: 0.000000051
S1: 0.000000603
S2: 0.000005190
S3: 0.000061020
S4: 0.002910000
I0: -0.000000098
I1: -0.000001390
I2: 0.000035200
I3: -0.000369000
I4: -0.009250000
UG0: 1.00
UG1: 1.00
UG2: 1.00
UG3: 1.00
UG4: 1.00
IA: 56
END
"""

_ARGUMENTS = {Command.SET_POWER_MODE: 1, Command.REGULATOR_SET: 2, Command.DEVICE_RUNNING_SET: 1}
_TICK_S = 0.005
GAP_SAMPLES = 3  # idle before each stage pulse: the firmware's code between two marked stages (30 us)
STAGE_CHANNELS = {"inference": 0, "front_end": 1}


@dataclass(frozen=True)
class BoardCurrents:
    """The virtual board's current: idle, and per stage a level and a duration (board time, not host time)."""

    idle_ma: float = 1.9
    frontend_ma: float = 5.8
    inference_ma: float = 7.4
    frontend_us: float = 2100.0
    inference_us: float = 39100.0
    ripple: float = 0.06  # a 2 kHz ripple of this relative amplitude on every pulse
    noise: float = 0.02  # relative sample-to-sample noise, everywhere


@dataclass(frozen=True)
class KnownPulse:
    stage: str
    start: int  # sample index from the start of sampling
    samples: int
    energy_uj: float  # the true energy put in: voltage x the current before quantization


def encode(current_a: np.ndarray, calibration: Calibration, vdd_mv: float) -> tuple[np.ndarray, np.ndarray]:
    """Range fields and ADC codes a PPK2 would send for these currents: the lowest range whose code fits."""
    ranges = np.full(len(current_a), -1)
    codes = np.zeros(len(current_a), np.int64)
    for r in range(RANGES):
        # Solve UG·(GS·x² + GI·x + S·VDD + I) = current for x, then x back to an ADC code.
        a, b = calibration.gs[r], calibration.gi[r]
        c = calibration.s[r] * vdd_mv / 1000 + calibration.i[r] - current_a / calibration.ug[r]
        x = -c / b if a == 0 else (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / (2 * a)
        code = np.round((x * calibration.r[r] / ADC_VOLTS_PER_COUNT + calibration.o[r]) / 4).astype(np.int64)
        fits = (ranges < 0) & (code >= 0) & (code < ADC_FULL_SCALE)
        ranges[fits], codes[fits] = r, code[fits]
    top = ranges < 0  # beyond the top range: it clips
    ranges[top], codes[top] = RANGES - 1, ADC_FULL_SCALE
    return ranges, codes


class VirtualPPK2:
    """`start()` returns the pty path to pass as `--power ppk2:PATH`; `board_stage` is the virtual board's hook."""

    def __init__(self, currents: BoardCurrents | None = None, marker_wired: bool = True, seed: int = 0) -> None:
        self.currents = currents or BoardCurrents()
        self.marker_wired = marker_wired
        self.calibration = Calibration.parse(METADATA)
        self.known: list[KnownPulse] = []
        self.commands: list[int] = []  # opcodes received, in order
        self.mode = SOURCE_METER
        self.vdd_mv = 3300
        self.dut_powered = False
        self.path: str | None = None
        self._rng = np.random.default_rng(seed)
        self._stages: collections.deque[str] = collections.deque()
        self._saturate = 0
        self._sampling = False
        self._clock = 0  # samples emitted since sampling started
        self._counter = 0
        self._sampling_since = 0.0
        self._input = bytearray()
        self._output = bytearray()
        self._stopping = threading.Event()
        self._unplugged = threading.Event()
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._run, name="virtual-ppk2", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._close()

    def __enter__(self) -> VirtualPPK2:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- hooks and faults ----

    def board_stage(self, stage: str) -> None:
        """The virtual board ran a stage ("front_end" or "inference"): its pulse joins the trace."""
        self._stages.append(stage)

    def disconnect(self) -> None:
        """The USB cable is pulled: both sides of the pty close (on the device's thread, which owns them)."""
        self._unplugged.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _close(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def saturate(self, samples: int) -> None:
        """The next samples read full scale in the top range, as a short would."""
        self._saturate = samples

    # ---- the device loop ----

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._unplugged.is_set():
                self._close()
                return
            try:
                readable, _, _ = select.select([self._master], [], [], _TICK_S)
                if readable:
                    self._input += os.read(self._master, 4096)
                    self._commands()
                if self._sampling:
                    self._sample()
                self._flush()
            except OSError as error:
                if error.errno not in (errno.EIO, errno.EAGAIN):  # EIO: the host side is not open
                    raise

    def _commands(self) -> None:
        while self._input:
            opcode = self._input[0]
            needed = 1 + _ARGUMENTS.get(opcode, 0)
            if len(self._input) < needed:
                return
            arguments = self._input[1:needed]
            del self._input[:needed]
            self.commands.append(opcode)
            if opcode == Command.GET_META_DATA:
                self._output += METADATA.encode()
            elif opcode == Command.SET_POWER_MODE:
                self.mode = arguments[0]
            elif opcode == Command.REGULATOR_SET:
                self.vdd_mv = arguments[0] << 8 | arguments[1]
            elif opcode == Command.DEVICE_RUNNING_SET:
                self.dut_powered = bool(arguments[0])
            elif opcode == Command.AVERAGE_START:
                self._sampling, self._clock, self._sampling_since = True, 0, time.monotonic()
                self._stages.clear()
            elif opcode == Command.AVERAGE_STOP:
                self._sampling = False

    def _sample(self) -> None:
        while self._stages:
            stage = self._stages.popleft()
            self._emit(self._idle(GAP_SAMPLES), None, None)
            self._emit(self._pulse(stage), STAGE_CHANNELS[stage], stage)
        due = int((time.monotonic() - self._sampling_since) * SAMPLE_RATE_HZ) - self._clock
        if due > 0:
            self._emit(self._idle(due), None, None)

    def _idle(self, samples: int) -> np.ndarray:
        return self._noisy(np.full(samples, self.currents.idle_ma / 1000))

    def _noisy(self, current_a: np.ndarray) -> np.ndarray:
        return current_a * (1 + self.currents.noise * self._rng.standard_normal(len(current_a)))

    def _pulse(self, stage: str) -> np.ndarray:
        level_ma, length_us = ((self.currents.inference_ma, self.currents.inference_us) if stage == "inference"
                               else (self.currents.frontend_ma, self.currents.frontend_us))
        t = np.arange(round(length_us * SAMPLE_RATE_HZ / 1e6)) / SAMPLE_RATE_HZ
        return self._noisy(level_ma / 1000 * (1 + self.currents.ripple * np.sin(2 * np.pi * 2000 * t)))

    def _emit(self, current_a: np.ndarray, channel: int | None, stage: str | None) -> None:
        powered = self.dut_powered or self.mode == AMPERE_METER
        current_a = current_a if powered else np.zeros_like(current_a)
        if stage is not None:
            self.known.append(KnownPulse(stage, self._clock, len(current_a),
                                         float(current_a.sum()) * self.vdd_mv / 1000 / SAMPLE_RATE_HZ * 1e6))
        ranges, codes = encode(current_a, self.calibration, self.vdd_mv)
        if self._saturate:
            hit = min(self._saturate, len(codes))
            ranges[:hit], codes[:hit] = RANGES - 1, ADC_FULL_SCALE
            self._saturate -= hit
        counter = (self._counter + np.arange(len(codes))) % COUNTER_MODULUS
        logic = (1 << channel) if channel is not None and self.marker_wired else 0
        words = (codes.astype(np.uint32) | (ranges.astype(np.uint32) << 14) | (counter.astype(np.uint32) << 18)
                 | np.uint32(logic << 24))
        self._output += words.astype("<u4").tobytes()
        self._clock += len(codes)
        self._counter = (self._counter + len(codes)) % COUNTER_MODULUS

    def _flush(self) -> None:
        while self._output:
            try:
                written = os.write(self._master, self._output)
            except BlockingIOError:
                return
            del self._output[:written]
