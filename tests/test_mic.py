"""`kws stream --mic` through a real audio stack: PulseAudio with a null sink whose monitor is the default source,
so what `paplay` plays into the sink is what the microphone records (PortAudio -> ALSA -> PulseAudio)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kws.board.sim import VirtualBoard
from kws.data import audio
from kws.device.mic import LevelMeter
from test_device_tools import _confident_clip


@pytest.fixture
def pulse(tmp_path):
    """A PulseAudio daemon of this test's own (its runtime folder in tmp_path), stopped afterwards."""
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(tmp_path / "pulse"), "HOME": str(tmp_path)}
    assert shutil.which("pulseaudio") and shutil.which("paplay"), "scripts/install.sh --test installs PulseAudio"
    subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr"], env=env,
                   check=True, capture_output=True)
    try:
        for command in (["pactl", "load-module", "module-null-sink", "sink_name=kwsmic"],
                        ["pactl", "set-default-source", "kwsmic.monitor"]):
            subprocess.run(command, env=env, check=True, capture_output=True)
        yield env
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)


def test_a_word_played_into_the_microphone_is_detected(pulse, tiny_model, synth_data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    with (model / "config.toml").open("a") as config:  # the tools are tested here, not the tiny model's level
        config.write("\n[recognizer]\nthreshold = 150\n")
    sample_rate = 16000
    clip = audio.read_audio(_confident_clip(tiny_model, synth_data, "yes"), sample_rate)
    wav = tmp_path / "yes.wav"
    audio.write_wav(wav, np.concatenate([np.zeros(sample_rate // 2, np.int16), clip,
                                         np.zeros(2 * sample_rate, np.int16)]), sample_rate)
    with VirtualBoard(model, "litert", link=tmp_path / "board") as board:
        streaming = subprocess.Popen([sys.executable, "-m", "kws.cli", "stream", "--mic", "--mic-device", "pulse",
                                      "--port", str(board.link)], env=pulse, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while board.mode != "host" and time.monotonic() < deadline:
                time.sleep(0.05)
            # The capture is running once the board has processed a second of its audio (a fixed wait was not
            # always enough: on a loaded machine the word played before the capture stream started).
            _wait_for_strides(board, 50, deadline)
            subprocess.run(["paplay", "--device=kwsmic", str(wav)], env=pulse, check=True, timeout=30)
            _wait_for_strides(board, 100, deadline)  # the word's last second and the recognizer's window
        finally:
            streaming.send_signal(signal.SIGINT)
            out, err = streaming.communicate(timeout=30)
    assert streaming.returncode == 0, err
    assert "listening on 'pulse'" in out
    count, labels = out.strip().splitlines()[-1].split(" detections: ")
    assert "yes" in labels.split(", "), out + err
    assert "mic level: rms" in out  # the meter's first 5 s period ended while the word played


def _wait_for_strides(board: VirtualBoard, strides: int, deadline: float) -> None:
    start = board.steps
    while board.steps < start + strides and time.monotonic() < deadline + 30:
        time.sleep(0.05)


def test_the_level_meter_reports_each_period_and_warns_of_clipping():
    meter = LevelMeter(16000, period_s=1.0)
    quiet = np.full(16000, 100, np.int16)
    assert meter.add(quiet[:8000]) is None
    line = meter.add(quiet[8000:])
    assert line.startswith("mic level: rms -50 dBFS, peak -50 dBFS") and "CLIPPING" not in line
    loud = np.full(16000, 32767, np.int16)
    assert "CLIPPING (16000 samples at full scale)" in meter.add(loud)
    assert "near silence" in meter.add(np.zeros(16000, np.int16))
