"""Measured energy: `kws bench --power ppk2[:PORT]` or `--power joulescope`.

A power monitor samples the board's supply current (and, for the Joulescope, voltage) together with the logic level
of the firmware's marker pins (`firmware/src/marker.h`: one high for each inference, one for each front-end stride).
The bench runs in two segments of one continuous trace:

1. **clips**: the benchmark clips in host-stream mode; every inference marker pulse in this segment is one
   inference, its energy the integral of voltage x current over the pulse (MLPerf Tiny's definition: the whole
   board's energy while the model runs, not the excess over idle);
2. **listening**: after BYE the board runs its always-listening loop on the microphone for `listen_s` seconds:
   the average power over the segment, the idle power (no marker high), the front-end energy per stride and the
   inference energy in the real loop.

Host-side marks (samples received when a segment starts or ends) lag the board by the USB latency, so segment
boundaries are only used with margins; energies are cut by the marker edges, which the monitor samples on the same
clock as the current.

Monitors: `kws.device.ppk2` (own client of the PPK2 serial protocol) and `kws.device.joulescope_monitor` (pyjoulescope_driver,
unverified without hardware; docs/energy.md names what is).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import numpy as np

from kws.device.power_trace import FRONTEND_CHANNEL, INFERENCE_CHANNEL, PowerMonitor, PowerMonitorError, Trace

if TYPE_CHECKING:
    from kws.device.link import Connection

LISTEN_S = 10.0  # always-listening segment: 500 strides, about 167 inferences at 60 ms
SETTLE_S = 1.5  # after BYE: the board resets its pipeline for the microphone and refills the 1 s window
LEAD_S = 0.1  # idle recorded before the first clip
TRAILING_S = 0.3  # after the last RESULT: its marker pulse reaches the host within USB latency
EXCERPT_INFERENCES = 3  # inferences shown in the trace plot
BOARD_START_S = 10.0  # powered by a source meter: boot, USB enumeration

Result = TypeVar("Result")


@dataclass(frozen=True)
class PowerSetup:
    """`--power` and its options."""

    monitor: str  # "ppk2" or "joulescope"
    port: str | None = None  # PPK2 serial port (None: the one PPK2 found by USB id); Joulescope: serial number
    voltage_v: float = 3.3  # source meter output, or (ampere meter) the supply the board is fed from
    ampere_meter: bool = False  # the PPK2 in series with an external supply instead of powering the board
    listen_s: float = LISTEN_S

    @classmethod
    def parse(cls, spec: str, **options: object) -> PowerSetup:
        """`ppk2`, `ppk2:/dev/ttyACM1`, `joulescope` or `joulescope:SERIAL`."""
        name, _, port = spec.partition(":")
        if name not in ("ppk2", "joulescope"):
            raise ValueError(f"--power {spec}: the monitor is ppk2[:PORT] or joulescope[:SERIAL]")
        return cls(name, port or None, **options)


def open_monitor(setup: PowerSetup) -> PowerMonitor:
    if setup.monitor == "ppk2":
        from kws.device.ppk2 import PPK2

        return PPK2(setup.port, setup.voltage_v, setup.ampere_meter)
    from kws.device.joulescope_monitor import Joulescope

    return Joulescope(setup.port)


@dataclass
class Measurement:
    """The trace's figures (`summary`, JSON-able, bench.json's "power") and what the plots need."""

    summary: dict
    inference_uj: list[float]
    excerpt: dict = field(default_factory=dict)  # time_ms, current_ma, inference/front-end marker arrays


def measure(setup: PowerSetup, monitor: PowerMonitor, connection: Connection, run_clips: Callable[[], Result],
            out: TextIO) -> tuple[Result, float, Measurement]:
    """Runs the clips, then the always-listening segment, on one recording; returns the clips' results, the time
    they took and the measurement."""
    from kws.board.protocol import FrameType

    monitor.start()
    clips_begin = _first_samples(monitor)
    start = time.monotonic()
    results = run_clips()
    seconds = time.monotonic() - start
    time.sleep(TRAILING_S)
    clips_end = monitor.mark()
    seq = connection.send(FrameType.BYE)
    connection.wait_for(lambda m: m.tag == "ACK" and m.fields.get("seq") == str(seq), 5.0, "ACK of BYE")
    print(f"always listening for {setup.listen_s:g} s", file=out, flush=True)
    time.sleep(SETTLE_S)
    listen_begin = monitor.mark()
    time.sleep(setup.listen_s)
    listen_end = monitor.mark()
    trace = monitor.stop()
    measurement = analyse(trace, (clips_begin, clips_end), (listen_begin, listen_end))
    measurement.summary["monitor"] = monitor.description
    return results, seconds, measurement


def _first_samples(monitor: PowerMonitor, timeout_s: float = 2.0) -> int:
    """Waits until the monitor's samples flow (it has acted on the start command), then a little idle lead."""
    deadline = time.monotonic() + timeout_s
    while monitor.mark() == 0:
        if time.monotonic() > deadline:
            raise PowerMonitorError(f"{monitor.description}: no samples within {timeout_s:g} s of starting")
        time.sleep(0.01)
    time.sleep(LEAD_S)
    return monitor.mark()


def wait_for_board(port: str | None, timeout_s: float = BOARD_START_S) -> None:
    """Returns once the board's serial port exists (at once if it does): a source meter that has just switched
    the board's supply on leaves it a few seconds to start and enumerate on USB."""
    from kws.device.link import DeviceError, find_port

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if port is None:
                find_port()
                return
            if Path(port).exists():
                return
            missing: Exception = FileNotFoundError(port)
        except DeviceError as error:
            missing = error
        if time.monotonic() > deadline:
            raise PowerMonitorError(f"the board did not appear within {timeout_s:g} s of the monitor powering it "
                                    f"({missing})")
        time.sleep(0.2)


# ---- analysis ----


def pulses(high: np.ndarray, begin: int, end: int) -> np.ndarray:
    """[start, stop) sample ranges of the pulses that start in [begin, end) and end before the trace does, as an
    (n, 2) array. A segment owns the pulses it starts: one running on past its end mark still counts whole."""
    edges = np.diff(high.astype(np.int8))
    rises = np.flatnonzero(edges == 1) + 1
    falls = np.flatnonzero(edges == -1) + 1
    rises = rises[(rises >= begin) & (rises < end)]
    following = np.searchsorted(falls, rises)
    ended = following < len(falls)
    return np.stack([rises[ended], falls[following[ended]]], axis=1).astype(np.int64)


def pulse_energies_uj(power_w: np.ndarray, ranges: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Energy of each pulse: the sum of power over its samples times the sample period; NaN for a pulse that
    overlaps a lost sample (and only for it)."""
    lost = np.isnan(power_w)
    cumulative = np.concatenate([[0.0], np.cumsum(np.where(lost, 0.0, power_w))])
    lost_before = np.concatenate([[0], np.cumsum(lost)])
    energies = (cumulative[ranges[:, 1]] - cumulative[ranges[:, 0]]) / sample_rate_hz * 1e6
    energies[lost_before[ranges[:, 1]] > lost_before[ranges[:, 0]]] = np.nan
    return energies


def _stats(values: np.ndarray) -> dict:
    return {"mean": round(float(np.mean(values)), 2), "p50": round(float(np.percentile(values, 50)), 2),
            "p90": round(float(np.percentile(values, 90)), 2), "count": len(values)}


def _finite(energies: np.ndarray, what: str) -> np.ndarray:
    kept = energies[np.isfinite(energies)]
    if not len(kept):
        raise PowerMonitorError(f"every {what} overlaps samples the monitor lost: no energy can be given")
    return kept


def analyse(trace: Trace, clips: tuple[int, int], listening: tuple[int, int]) -> Measurement:
    """Energy per inference (clips), front-end energy per stride, idle and always-listening power (listening)."""
    fs, power = trace.sample_rate_hz, trace.power_w
    inference, frontend = trace.channel(INFERENCE_CHANNEL), trace.channel(FRONTEND_CHANNEL)
    clip_pulses = pulses(inference, *clips)
    if not len(clip_pulses):
        state = "stays high" if inference[clips[0]:clips[1]].all() else "never goes high"
        mean_ma = np.nanmean(trace.current_a[clips[0]:clips[1]]) * 1e3
        raise PowerMonitorError(
            f"no inference marker pulse on logic channel D{INFERENCE_CHANNEL} during the clips (it {state}; the "
            f"board drew {mean_ma:.2f} mA on average, so power is measured): build the firmware with "
            "-DKWS_MARKER=1 and wire the board's D2 to the monitor's D0 (firmware/README.md)")
    energies = pulse_energies_uj(power, clip_pulses, fs)
    lost = int(np.isnan(energies).sum())
    energies = _finite(energies, "inference marker pulse")
    widths_us = (clip_pulses[:, 1] - clip_pulses[:, 0]) / fs * 1e6

    listen_inference = pulses(inference, *listening)
    listen_frontend = pulses(frontend, *listening)
    span = slice(*listening)
    quiet = ~(inference[span] | frontend[span])
    seconds = (listening[1] - listening[0]) / fs
    always_listening = {
        "seconds": round(seconds, 2),
        "average_mw": round(float(np.nanmean(power[span])) * 1e3, 3),
        "idle_mw": round(float(np.nanmean(power[span][quiet])) * 1e3, 3) if quiet.any() else None,
        "idle_includes_front_end": not len(listen_frontend),
        "inferences_per_s": round(len(listen_inference) / seconds, 2),
        "inference_uj": (_stats(_finite(pulse_energies_uj(power, listen_inference, fs), "inference pulse"))
                         if len(listen_inference) else None),
        "frontend_uj_per_stride": (_stats(_finite(pulse_energies_uj(power, listen_frontend, fs), "front-end pulse"))
                                   if len(listen_frontend) else None),
        "strides_per_s": round(len(listen_frontend) / seconds, 2),
    }
    summary = {
        "sample_rate_hz": fs,
        "voltage_v": round(float(np.nanmean(trace.voltage_v)), 4),
        "inference_uj": _stats(energies),
        "inference_us": _stats(widths_us),
        "inferences_lost_to_gaps": lost,
        "always_listening": always_listening,
        "lost_samples": int(np.isnan(trace.current_a).sum()),
    }
    # The plot shows the real loop (idle between strides) when the listening segment has inferences.
    shown, segment = ((listen_inference, "always listening") if len(listen_inference) else (clip_pulses, "clips"))
    return Measurement(summary, [round(float(e), 3) for e in energies],
                       _excerpt(trace, shown[:EXCERPT_INFERENCES], segment))


def _excerpt(trace: Trace, shown: np.ndarray, segment: str) -> dict:
    """The trace from a little before the first shown inference to a little after the last, for the plot."""
    margin = int(0.005 * trace.sample_rate_hz)
    begin, end = max(0, int(shown[0, 0]) - margin), min(len(trace.current_a), int(shown[-1, 1]) + margin)
    step = max(1, (end - begin) // 20_000)  # at most ~20k points drawn
    window = slice(begin, end, step)
    return {"time_ms": (np.arange(begin, end, step) - begin) / trace.sample_rate_hz * 1e3,
            "current_ma": trace.current_a[window] * 1e3,
            "inference": trace.channel(INFERENCE_CHANNEL)[window],
            "front_end": trace.channel(FRONTEND_CHANNEL)[window], "segment": segment}


def compare(power: dict, inference_uj: float, average_mw: float) -> dict:
    """An estimate (energy per inference, always-listening power) beside the measurement, with its relative
    error: (estimated - measured) / measured."""
    def error(estimate: float, measured: float | None) -> float | None:
        return None if not measured else round((estimate - measured) / measured, 4)

    return {"inference_uj": inference_uj, "average_mw": average_mw,
            "inference_uj_error": error(inference_uj, power["inference_uj"]["mean"]),
            "average_mw_error": error(average_mw, power["always_listening"]["average_mw"])}


def with_estimate(power: dict, estimated: dict) -> dict:
    """bench.json's "power": the measurement with `kws bench`'s board-model estimate ("energy") compared."""
    power["estimate"] = compare(power, estimated["inference_uj"], estimated["average_mw"])
    return power


def _uj(stats: dict | None) -> str:
    return "–" if stats is None else f"{stats['mean']} (p90 {stats['p90']}, n={stats['count']})"


def _percent(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.1%}"


def markdown(power: dict, estimate: dict | None = None) -> str:
    """The measured-energy section: measured and estimated side by side (estimate: power["estimate"] unless
    another estimate is given, as `kws report` gives its own)."""
    listening, estimate = power["always_listening"], estimate or power["estimate"]
    idle_note = " (front end included: no front-end marker)" if listening["idle_includes_front_end"] else ""
    return f"""
### Measured energy ({power['monitor']})

| | measured | estimated (board model) | estimate's error |
|---|---|---|---|
| energy per inference, µJ (host-stream clips) | {_uj(power['inference_uj'])} | {estimate['inference_uj']} | {_percent(estimate['inference_uj_error'])} |
| average power always listening, mW | {listening['average_mw']} | {estimate['average_mw']} | {_percent(estimate['average_mw_error'])} |
| inference marker width, µs | {power['inference_us']['mean']} (p90 {power['inference_us']['p90']}) | | |
| energy per inference always listening, µJ | {_uj(listening['inference_uj'])} | | |
| front-end energy per 20 ms stride, µJ | {_uj(listening['frontend_uj_per_stride'])} | | |
| idle power, mW{idle_note} | {listening['idle_mw']} | | |

{listening['seconds']} s always listening: {listening['inferences_per_s']} inferences/s, {listening['strides_per_s']}
strides/s. {power['lost_samples']} samples lost by the monitor ({power['inferences_lost_to_gaps']} inferences left out).
"""


def plot(measurement: Measurement, report: Path) -> list[str]:
    """trace.png (current around a few inferences, markers shaded) and energy.png (energy per inference)."""
    from kws.evaluation import plots

    excerpt = measurement.excerpt
    plots.current_trace(excerpt["time_ms"], excerpt["current_ma"],
                        {"inference": excerpt["inference"], "front end": excerpt["front_end"]},
                        f"supply current, {excerpt['segment']}: {measurement.summary['monitor']}",
                        report / "trace.png")
    plots.histograms({"energy per inference": measurement.inference_uj}, "µJ",
                     f"{len(measurement.inference_uj)} inferences, host-stream clips", report / "energy.png")
    return ["trace.png", "energy.png"]
