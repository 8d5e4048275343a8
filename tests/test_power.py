"""Measured energy without hardware: the virtual board drives a virtual PPK2 on a pseudo-terminal, whose current
trace has known pulses on the marker channels; `kws.device.power` must recover them through the PPK2 protocol client."""

from __future__ import annotations

import io
import json
import sys
import time
import types
import wave
from pathlib import Path

import numpy as np
import pytest

from kws import cli, config
from kws.board.protocol import FrameType, clip_payload, split_audio
from kws.board.sim import VirtualBoard
from kws.common.paths import REPO_ROOT
from kws.device import power
from kws.device.link import Connection
from kws.device.ppk2 import AMPERE_METER, PPK2, SOURCE_METER, Calibration, Command, decode
from kws.device.virtual_ppk2 import METADATA, VirtualPPK2, encode

MODEL = REPO_ROOT / "models" / "speech_commands_12"
LISTEN_S = 1.5


@pytest.fixture
def rig(request, tmp_path):
    """(virtual PPK2, virtual board) wired as firmware/README.md wires the real ones; the PPK2 keyword arguments
    come from @pytest.mark.parametrize(..., indirect) or the defaults."""
    ppk2 = VirtualPPK2(**getattr(request, "param", {}))
    ppk2.start()
    board = VirtualBoard(MODEL, "litert", link=tmp_path / "board", stage_listener=ppk2.board_stage)
    board.start()
    yield ppk2, board
    board.stop()
    ppk2.stop()


def send_clips(connection: Connection, count: int, seed: int = 0) -> list:
    """count one-second noise clips through host-stream mode, as `kws bench` sends its clips."""
    rng = np.random.default_rng(seed)
    results = []
    for clip_id in range(count):
        samples = (rng.standard_normal(16000) * 800).astype("<i2")
        connection.send(FrameType.CLIP_BEGIN, clip_payload(clip_id))
        for payload in split_audio(samples.tobytes()):
            connection.send(FrameType.AUDIO, payload)
        connection.send(FrameType.CLIP_END, clip_payload(clip_id))
        results.append(connection.wait_for(lambda m, i=clip_id: m.tag == "RESULT" and m.fields["clip"] == str(i),
                                           30, f"RESULT {clip_id}"))
    return results


def measure(ppk2: VirtualPPK2, board: VirtualBoard, clips: int = 4, during_clips=None) -> power.Measurement:
    """What `kws bench --power ppk2:PATH` does, with a hook that runs after the first clip (to inject a fault)."""
    setup = power.PowerSetup("ppk2", ppk2.path, listen_s=LISTEN_S)
    monitor = power.open_monitor(setup)
    try:
        with Connection(str(board.link)) as connection:
            connection.handshake()

            def run() -> list:
                results = send_clips(connection, 1)
                if during_clips:
                    during_clips()
                return results + send_clips(connection, clips - 1, seed=1)

            _, _, measurement = power.measure(setup, monitor, connection, run, io.StringIO())
    finally:
        monitor.close()
    return measurement


def test_energy_per_inference_is_recovered_within_one_percent(rig):
    ppk2, board = rig
    measurement = measure(ppk2, board)
    summary = measurement.summary
    count = summary["inference_uj"]["count"]
    assert count >= 4  # at least each clip's CLIP_END inference
    known = [p for p in ppk2.known if p.stage == "inference"][:count]  # the clips' pulses come first
    recovered = np.array(measurement.inference_uj)
    truth = np.array([p.energy_uj for p in known])
    errors = np.abs(recovered - truth) / truth
    print(f"recovered vs known energy per inference: max relative error {errors.max():.2e} over {count} pulses")
    assert errors.max() < 0.01
    assert summary["inference_uj"]["mean"] == pytest.approx(truth.mean(), rel=0.01)
    currents = ppk2.currents
    assert summary["inference_us"]["mean"] == pytest.approx(currents.inference_us, rel=0.01)
    assert summary["voltage_v"] == pytest.approx(3.3)
    assert summary["lost_samples"] == 0

    listening = summary["always_listening"]
    frontend = [p.energy_uj for p in ppk2.known if p.stage == "front_end"][-listening["frontend_uj_per_stride"]["count"]:]
    assert listening["frontend_uj_per_stride"]["mean"] == pytest.approx(np.mean(frontend), rel=0.01)
    assert listening["idle_mw"] == pytest.approx(currents.idle_ma * 3.3, rel=0.01)
    assert not listening["idle_includes_front_end"]
    # The virtual board listens in real time: a stride every 20 ms and an inference every third.
    assert listening["strides_per_s"] == pytest.approx(50, rel=0.15)
    every = config.load(MODEL / "config.toml").recognizer.inference_every_strides
    assert listening["inferences_per_s"] == pytest.approx(50 / every, rel=0.2)
    inference_s = listening["inferences_per_s"] * currents.inference_us / 1e6  # per second of listening
    frontend_s = listening["strides_per_s"] * currents.frontend_us / 1e6
    expected_mw = 3.3 * (inference_s * currents.inference_ma + frontend_s * currents.frontend_ma
                         + (1 - inference_s - frontend_s) * currents.idle_ma)
    assert listening["average_mw"] == pytest.approx(expected_mw, rel=0.05)


def test_a_disconnected_ppk2_is_an_error(rig):
    ppk2, board = rig
    with pytest.raises(power.PowerMonitorError, match="disconnected during the measurement"):
        measure(ppk2, board, during_clips=ppk2.disconnect)


@pytest.mark.parametrize("rig", [{"marker_wired": False}], indirect=True)
def test_a_missing_marker_is_a_clear_error_not_a_number(rig):
    ppk2, board = rig
    with pytest.raises(power.PowerMonitorError, match=r"no inference marker pulse on logic channel D0 .*never goes "
                                                      r"high.*-DKWS_MARKER=1"):
        measure(ppk2, board)


def test_a_saturated_range_is_refused(rig):
    ppk2, board = rig
    with pytest.raises(power.PowerMonitorError, match="full scale in the PPK2's highest range"):
        measure(ppk2, board, during_clips=lambda: ppk2.saturate(300))


def test_the_wrong_device_on_the_port_is_named(tmp_path):
    with VirtualBoard(MODEL, "litert", hello_interval_s=0.2) as board:
        with pytest.raises(power.PowerMonitorError, match=f"{board.path} is not a PPK2: it sent 'HELLO"):
            PPK2(board.path, 3.3)


def _commands_seen(ppk2: VirtualPPK2, count: int) -> list[int]:
    deadline = time.monotonic() + 5
    while len(ppk2.commands) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return ppk2.commands


def test_the_client_configures_the_ppk2_as_a_source_or_ampere_meter():
    with VirtualPPK2() as ppk2:
        PPK2(ppk2.path, 3.0).close()
        assert _commands_seen(ppk2, 6) == [Command.AVERAGE_STOP, Command.GET_META_DATA, Command.SET_POWER_MODE,
                                           Command.REGULATOR_SET, Command.DEVICE_RUNNING_SET, Command.AVERAGE_STOP]
        assert (ppk2.mode, ppk2.vdd_mv, ppk2.dut_powered) == (SOURCE_METER, 3000, True)
    with VirtualPPK2() as ppk2:
        PPK2(ppk2.path, 1.8, ampere_meter=True).close()
        assert Command.DEVICE_RUNNING_SET not in _commands_seen(ppk2, 5)  # it does not switch a supply it lacks
        assert (ppk2.mode, ppk2.vdd_mv) == (AMPERE_METER, 1800)


def test_decoding_inverts_the_calibration_and_turns_counter_gaps_into_lost_samples():
    calibration = Calibration.parse(METADATA)
    current = np.geomspace(1e-7, 5.0, 400)  # every range
    ranges, codes = encode(current, calibration, 3300)
    assert set(ranges.tolist()) == {0, 1, 2, 3, 4}
    words = codes | (ranges << 14) | ((np.arange(400) % 64) << 18) | (np.arange(400) % 2 << 24)
    keep = np.r_[0:100, 103:400]  # three samples lost on the way
    samples = decode(words[keep].astype("<u4").tobytes(), calibration, 3300)
    assert samples.lost == 3 and np.isnan(samples.current_a[100:103]).all()
    kept = np.isfinite(samples.current_a)
    np.testing.assert_allclose(samples.current_a[kept], current[keep], rtol=2e-3, atol=3e-8)  # half an ADC step
    assert samples.logic.tolist() == (np.arange(400) % 2).tolist()[:100] + [1, 1, 1] + (np.arange(400) % 2).tolist()[103:]


def test_a_lost_sample_spoils_only_the_pulse_it_falls_in():
    power_w = np.ones(12)
    power_w[5] = np.nan
    energies = power.pulse_energies_uj(power_w, np.array([[0, 2], [4, 7], [8, 12]]), 1e6)
    assert np.isnan(energies[1]) and energies[[0, 2]].tolist() == [2.0, 4.0]


def test_a_segment_owns_the_whole_pulses_it_starts():
    high = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1], bool)
    assert power.pulses(high, 0, len(high)).tolist() == [[4, 7], [8, 10]]  # not the cut first and last ones
    assert power.pulses(high, 5, 9).tolist() == [[8, 10]]


def _wav(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.random.default_rng(seed).standard_normal(16000) * 1000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())


def test_kws_bench_power_writes_measured_and_estimated_energy_and_the_plots(rig, tmp_path, capsys):
    ppk2, board = rig
    data = tmp_path / "clips"
    for i, word in enumerate(["yes", "no", "up", "down"]):
        _wav(data / word / f"speaker{i}_nohash_0.wav", i)
    report = tmp_path / "report"
    assert cli.main(["bench", "--port", str(board.link), "--data", str(data), "--split", "all", "--report",
                     str(report), "--power", f"ppk2:{ppk2.path}", "--listen-seconds", str(LISTEN_S)]) == 0
    summary = json.loads((report / "bench.json").read_text())
    measured = summary["power"]
    assert measured["inference_uj"]["count"] >= summary["accuracy"]["clips"]
    assert measured["estimate"]["inference_uj"] == summary["energy"]["inference_uj"]
    error = measured["estimate"]["inference_uj_error"]
    assert error == pytest.approx(summary["energy"]["inference_uj"] / measured["inference_uj"]["mean"] - 1, abs=1e-3)
    assert "### Measured energy (Nordic PPK2" in (report / "bench.md").read_text()
    for name in ("trace.png", "energy.png"):
        assert (report / name).stat().st_size > 10_000

    from kws.evaluation.evaluate import ModelDir
    from kws.evaluation.report import device_cost

    cost = device_cost(ModelDir(MODEL), summary)
    assert cost["measured"]["power"] == measured
    comparison = power.compare(measured, cost["inference_uj"], cost["average_mw"])
    assert comparison["inference_uj_error"] == pytest.approx(cost["inference_uj"] / measured["inference_uj"]["mean"] - 1,
                                                             abs=1e-3)


class FakeJoulescopeDriver:
    """pyjoulescope_driver.Driver as its documentation describes it, streaming a known trace when asked."""

    def __init__(self) -> None:
        self.published: list[tuple[str, object]] = []
        self.callbacks: dict[str, object] = {}

    def device_paths(self) -> list[str]:
        return ["u/js220/000415"]

    def open(self, path: str, mode: str) -> None:
        pass

    def publish(self, topic: str, value: object) -> None:
        self.published.append((topic, value))

    def subscribe(self, topic: str, flags: list, callback: object) -> None:
        self.callbacks[topic] = callback

    def unsubscribe(self, topic: str, callback: object) -> None:
        self.callbacks.pop(topic)

    def stream(self, n: int, pulse: slice) -> None:
        """n samples at 100 kHz (decimated from 1 MHz): 2 mA idle, 8 mA with GPI0 high over pulse, 3.3 V."""
        current = np.full(n, 0.002, np.float32)
        current[pulse] = 0.008
        gpi0 = np.zeros(n, np.uint8)
        gpi0[pulse] = 1
        for name, data in (("s/i", current), ("s/v", np.full(n, 3.3, np.float32)),
                           ("s/gpi/0", np.packbits(gpi0, bitorder="little")),
                           ("s/gpi/1", np.packbits(np.zeros(n, np.uint8), bitorder="little"))):
            self.callbacks[f"u/js220/000415/{name}/!data"](
                f"u/js220/000415/{name}/!data",
                {"sample_id": 5000, "decimate_factor": 10, "sample_rate": 1_000_000, "data": data})

    def close(self, path: str) -> None:
        pass

    def finalize(self) -> None:
        pass


def test_the_joulescope_path_against_its_documented_api(monkeypatch):
    """Unverified on hardware: checks our use of the documented topics and message fields only."""
    driver = FakeJoulescopeDriver()
    monkeypatch.setitem(sys.modules, "pyjoulescope_driver", types.SimpleNamespace(Driver=lambda: driver))
    monitor = power.open_monitor(power.PowerSetup.parse("joulescope"))
    monitor.start()
    driver.stream(4000, slice(1000, 2000))
    assert monitor.mark() == 4000
    trace = monitor.stop()
    monitor.close()
    assert ("u/js220/000415/h/fs", 100_000) in driver.published
    assert ("u/js220/000415/s/gpi/0/ctrl", 1) in driver.published
    ranges = power.pulses(trace.channel(power.INFERENCE_CHANNEL), 0, 4000)
    assert ranges.tolist() == [[1000, 2000]]
    energy = power.pulse_energies_uj(trace.power_w, ranges, trace.sample_rate_hz)
    assert energy[0] == pytest.approx(0.008 * 3.3 * 1000 / 100_000 * 1e6, rel=1e-6)


def test_a_joulescope_without_its_driver_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyjoulescope_driver", None)
    with pytest.raises(power.PowerMonitorError, match=r"pip install -e '\.\[joulescope\]'"):
        power.open_monitor(power.PowerSetup.parse("joulescope"))


def test_power_setup_parses_the_monitor_and_its_port():
    assert power.PowerSetup.parse("ppk2:/dev/ttyACM3") == power.PowerSetup("ppk2", "/dev/ttyACM3")
    with pytest.raises(ValueError, match="ppk2"):
        power.PowerSetup.parse("otii")
