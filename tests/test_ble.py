"""Detections over Bluetooth LE: the virtual board's GATT service on bumble's virtual radio, driven by a real GATT
client (`kws monitor --ble` through bumble's host stack) over the virtual link, against the same board's serial
lines; drops, reconnects, malformed values and the errors a user can meet."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kws import cli
from kws.board import core
from kws.board.ble_peripheral import BlePeripheral
from kws.board.sim import VirtualBoard
from kws.common.paths import REPO_ROOT
from kws.data import audio
from kws.device import monitor
from kws.device.ble import BleError, BleLink
from kws.device.link import ProtocolMismatch
from kws.evaluation.evaluate import ModelDir
from test_device_tools import _confident_clip

LABELS = ["silence", "unknown", "yes", "no"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def radio():
    """A bare peripheral (no pipeline) and the HCI transport of its host adapter."""
    port = _free_port()
    peripheral = BlePeripheral("0123abcd", f"tcp-server:127.0.0.1:{port}")
    peripheral.start()
    peripheral.set_info({"proto": 1, "model": "t", "model_id": "0123abcd", "labels": LABELS})
    yield peripheral, f"tcp-client:127.0.0.1:{port}"
    peripheral.stop()


def _next(link: BleLink, tag: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = link.next_event(timeout=0.1)
        if event is not None and getattr(event, "tag", None) == tag:
            return event
    raise AssertionError(f"no {tag} within {timeout} s")


def _wait(condition, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_gaps_drops_and_counters_across_a_drop(radio):
    peripheral, hci = radio
    notices: list[str] = []
    with BleLink("0123abcd", hci, notice=notices.append, stats_interval_s=0.3) as link:
        hello = _next(link, "HELLO")
        assert hello.get_list("labels") == LABELS
        # subscribed once the first stats read comes back (it follows the subscription)
        _next(link, "STATS")
        peripheral.detection(2, 230, 1500, 700, 40000, 41000)
        det = _next(link, "DET")
        assert det.fields == {"t_ms": "1500", "label": "yes", "idx": "2", "score": "230", "fe_us": "700",
                              "inf_us": "40000", "step_us": "41000", "seq": "0"}
        peripheral.drop()
        peripheral.detection(3, 210, 2500, 700, 40000, 41000)  # no central: dropped and counted, never waited for
        _wait(lambda: any("reconnected" in notice for notice in notices), what="the reconnect")
        _next(link, "STATS")
        peripheral.detection(3, 220, 3500, 700, 40000, 41000)
        det = _next(link, "DET")
        assert det.fields["seq"] == "2" and det.fields["label"] == "no"
        assert link.sequence.missed == 1 and link.reconnects == 1
        assert any("1 detection(s) before seq 2 never arrived" in notice for notice in notices)
        peripheral.set_stats({**dict.fromkeys(core.BLE_STATS_KEYS, 5), "free_ram": "na", "mode": "host"})
        _wait(lambda: (event := link.next_event(0.1)) is not None and event.tag == "STATS"
              and event.fields["ble_notified"] == "2", what="stats with the radio's counters")
    stats = core.decode_ble_stats(peripheral._stats)
    assert (stats["ble_notified"], stats["ble_dropped"], stats["ble_connections"]) == (2, 1, 2)
    assert stats["steps"] == 5 and stats["mode"] == "host" and stats["free_ram"] == "na"


def test_malformed_notifications_are_counted_and_the_link_goes_on(radio):
    peripheral, hci = radio
    rng = np.random.default_rng(0)
    good = core.BleCounters().next_detection(1, 100, 10, 1, 2, 3)
    malformed = [b"", good[:-1], good + b"\0", b"\x02" + good[1:], good[:1] + b"\x09" + good[2:],
                 *(rng.integers(0, 256, int(rng.integers(1, 21)), dtype=np.uint8).tobytes() for _ in range(15))]
    malformed = [value for value in malformed if value != good]

    def notify(value: bytes) -> None:
        peripheral._loop.call_soon_threadsafe(
            lambda: peripheral._loop.create_task(peripheral.device.notify_subscribers(peripheral._detection, value)))

    with BleLink(None, hci, notice=lambda _text: None, stats_interval_s=0.3) as link:
        _next(link, "HELLO")
        _next(link, "STATS")
        for value in malformed:
            notify(value)
        notify(good)
        assert _next(link, "DET").fields["idx"] == "1"
        # every malformed value that decodes badly is one garbage event; a random one can be well formed
        expected = sum(1 for value in malformed if _rejected(value))
        assert link.garbage == expected >= 5


def _rejected(value: bytes) -> bool:
    try:
        core.decode_ble_detection(value, len(LABELS))
    except core.BleValueError:
        return True
    return False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 255))
def test_decoders_take_any_bytes(data, num_labels):
    try:
        detection = core.decode_ble_detection(data, num_labels)
    except core.BleValueError as error:
        assert error.kind in ("length", "format", "label")
    else:
        assert len(data) == 19 and data[0] == 1 and detection.label_index < num_labels
    try:
        core.decode_ble_stats(data)
    except core.BleValueError as error:
        assert error.kind in ("length", "format")
    else:
        assert len(data) == 54 and data[0] == 1


def test_a_board_of_another_protocol_or_none_at_all_is_a_clear_error(radio):
    peripheral, hci = radio
    peripheral.set_info({"proto": 2, "labels": LABELS})
    with BleLink(None, hci) as link, pytest.raises(ProtocolMismatch, match="protocol version 2"):
        _next(link, "HELLO")
    with BleLink("nano-kws ffffffff", hci, scan_timeout_s=1.0) as link, \
            pytest.raises(BleError, match="'nano-kws ffffffff' not found"):
        _next(link, "HELLO")
    with BleLink(None, f"tcp-client:127.0.0.1:{_free_port()}") as link, pytest.raises(BleError, match="cannot open"):
        _next(link, "HELLO")


def test_monitor_without_a_bluetooth_stack_says_so(capsys):
    # No BlueZ here: bleak cannot reach the system bus. Elsewhere the message names the adapter, its power, a
    # permission or a board not found; what is checked is that the user gets one sentence, not a traceback.
    assert cli.main(["monitor", "--ble", "nano-kws 0123abcd", "--duration", "1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("kws monitor: error:") and "Traceback" not in error
    assert any(text in error for text in ("no Bluetooth stack", "no Bluetooth adapter", "switched off",
                                          "no permission", "not found"))


class MonitorThread:
    def __init__(self, log, **link) -> None:
        self.out, self.stop = io.StringIO(), threading.Event()
        self.thread = threading.Thread(target=monitor.run, kwargs={"out": self.out, "stop": self.stop,
                                                                   "log_path": str(log), **link})
        self.thread.start()

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        _wait(lambda: text in self.out.getvalue(), timeout, f"{text!r} in:\n{self.out.getvalue()}")

    def close(self) -> str:
        self.stop.set()
        self.thread.join(timeout=15)
        return self.out.getvalue()


def _records(path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [{key: value for key, value in json.loads(line).items() if key != "received_at"} for line in lines]


def test_same_detections_over_ble_as_over_serial_across_a_forced_disconnect(tiny_model, synth_data, tmp_path):
    model = tmp_path / "model"  # a threshold the tiny model's synthetic "yes" clears (see test_device_tools)
    shutil.copytree(tiny_model, model)
    with (model / "config.toml").open("a") as config:
        config.write("\n[recognizer]\nthreshold = 150\n")
    sample_rate = ModelDir(model).config.audio.sample_rate
    word = audio.read_audio(_confident_clip(tiny_model, synth_data, "yes"), sample_rate)
    silence = np.zeros(sample_rate, np.int16)
    # The board's own input, in real time and looped: both monitors only listen (a stream would need the port).
    recording = np.concatenate([silence, word, silence, word])
    port = _free_port()
    with VirtualBoard(model, "litert", audio=recording, link=tmp_path / "board",
                      ble_hci=f"tcp-server:127.0.0.1:{port}") as board:
        serial_log, ble_log = tmp_path / "serial.jsonl", tmp_path / "ble.jsonl"
        over_ble = MonitorThread(ble_log, port=None, ble=board.ble.name, hci=f"tcp-client:127.0.0.1:{port}")
        over_serial = MonitorThread(serial_log, port=str(board.link))
        try:
            over_serial.wait_for("monitoring")
            over_ble.wait_for("board: model")  # connected and read the info; it subscribes right after
            first = board.sent["DET"]  # what the board said before both listened is not compared
            _wait(lambda: len(_records(ble_log)) >= 1 and board.sent["DET"] > first, 30, "a first detection")
            board.ble.drop()  # just after a detection: the next one is about 2 s of audio away
            over_ble.wait_for("reconnected")
            _wait(lambda: board.sent["DET"] >= first + 3, 30, "detections after the reconnect")
            time.sleep(0.5)
        finally:
            serial_output, ble_output = over_serial.close(), over_ble.close()
    over_serial_records, over_ble_records = _records(serial_log), _records(ble_log)
    # The serial monitor may have opened a moment after the BLE one subscribed, or the reverse: compare from the
    # first detection both heard.
    common = next(record for record in over_ble_records if record in over_serial_records)
    over_ble_records = over_ble_records[over_ble_records.index(common):]
    over_serial_records = over_serial_records[over_serial_records.index(common):]
    length = min(len(over_ble_records), len(over_serial_records))
    assert length >= 3 and abs(len(over_ble_records) - len(over_serial_records)) <= 1
    assert over_ble_records[:length] == over_serial_records[:length], (serial_output, ble_output)
    assert "1 reconnects, 0 detections lost" in ble_output, ble_output


def test_kws_sim_ble_from_the_command_line(tiny_model, tmp_path, capsys):
    port = _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "kws.cli", "sim", "--model", str(tiny_model), "--backend",
                            "litert", "--ble", f"tcp-server:127.0.0.1:{port}"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "host")})
    try:
        for line in sim.stdout:
            if "Bluetooth LE" in line:
                break
        assert f"--hci tcp-client:127.0.0.1:{port}" in line, line
        name = line.split("'")[1]
        threading.Timer(6.5, lambda: sim.send_signal(signal.SIGUSR1)).start()  # after the first stats read
        assert cli.main(["monitor", "--ble", name.removeprefix("nano-kws "), "--hci",
                         f"tcp-client:127.0.0.1:{port}", "--duration", "9"]) == 0
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=20)
    output = capsys.readouterr().out
    assert output.count("board: model") == 2 and "stats:" in output and "1 reconnects" in output, output


def test_a_radio_that_cannot_start_is_a_clear_error(tiny_model, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["sim", "--model", str(tiny_model), "--backend", "litert", "--ble",
                         f"tcp-server:127.0.0.1:{port}"]) == 2
    error = capsys.readouterr().err
    assert f"virtual radio on tcp-server:127.0.0.1:{port}" in error and "Traceback" not in error, error
