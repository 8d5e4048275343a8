"""The host pipeline and the virtual board: same model input as training, and the board's side of the protocol
over a real pty (handshake, clips, CRC and truncated frames, version mismatch, timers)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
import serial

from kws.board import core
from kws.board.pipeline import Step, StreamingPipeline
from kws.board.protocol import FrameType, LineDecoder, Message, clip_payload, encode_frame, hello_payload
from kws.board.sim import VirtualBoard
from kws.data import audio
from kws.evaluation.evaluate import ModelDir
from kws.frontends.microfrontend import ClipFeatures


def _yes_clip(synth_data, sample_rate: int, clip_samples: int) -> np.ndarray:
    path = sorted((synth_data / "yes").glob("*.wav"))[0]
    return audio.fit_length(audio.read_audio(path, sample_rate), clip_samples)


def test_pipeline_clip_gives_the_training_model_input(tiny_model, synth_data):
    model_dir = ModelDir(tiny_model)
    config = model_dir.config
    pipeline = StreamingPipeline(model_dir, "tflm")
    clip = _yes_clip(synth_data, config.audio.sample_rate, config.clip_samples)
    noise = np.random.default_rng(0).integers(-3000, 3000, 7000).astype(np.int16)
    pipeline.feed(noise)  # stream state before the clip must not leak through reset()
    pipeline.reset()
    steps = pipeline.feed(clip)

    expected = pipeline.scaling.apply(ClipFeatures(config).raw(clip))
    assert np.array_equal(pipeline.window(), expected)
    # A clip fills the window exactly once: one inference, stamped with the samples consumed since the reset when its
    # last slice was complete (the firmware's pipeline_reset sets its audio clock back to 0 too).
    last_slice_end = config.window_samples + (config.num_slices - 1) * config.stride_samples
    assert len(steps) == 1 and steps[0].time_ms == last_slice_end * 1000 // config.audio.sample_rate
    reference = core.scores_from_int8(pipeline.model.predict(expected[np.newaxis])[0], pipeline.model.output.zero_point)
    assert np.array_equal(steps[0].scores, reference)
    assert np.array_equal(pipeline.classify_window(), reference)


def test_pipeline_steps_do_not_depend_on_chunking(tiny_model, synth_data):
    model_dir = ModelDir(tiny_model)
    config = model_dir.config
    clip = _yes_clip(synth_data, config.audio.sample_rate, config.clip_samples)
    stream = np.concatenate([np.zeros(5000, np.int16), clip, np.zeros(9000, np.int16)])
    results = []
    for chunk in (len(stream), 512, 333):
        pipeline = StreamingPipeline(model_dir, "litert")
        steps = [step for start in range(0, len(stream), chunk) for step in pipeline.feed(stream[start:start + chunk])]
        results.append([(step.time_ms, step.scores.tolist(), step.detection) for step in steps])
    assert results[0] == results[1] == results[2]
    slices = (len(stream) - config.window_samples) // config.stride_samples + 1
    assert len(results[0]) == slices - config.num_slices + 1  # one inference per stride once the window is full


class Client:
    """The host side of the pty, minimal: raw frames out, decoded lines in."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, timeout=0.05)
        self.decoder = LineDecoder()
        self.pending: list[Message] = []  # decoded but not yet looked at
        self.seq = 0

    def send(self, frame_type: int, payload: bytes = b"") -> int:
        seq, self.seq = self.seq, self.seq + 1
        self.port.write(encode_frame(frame_type, seq, payload))
        return seq

    def expect(self, tag: str, timeout: float = 5.0, **fields: object) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                event = self.pending.pop(0)
                if event.tag == tag and all(event.fields.get(key) == str(value) for key, value in fields.items()):
                    return event
            if time.monotonic() > deadline:
                break
            self.pending += [e for e in self.decoder.feed(self.port.read(4096)) if isinstance(e, Message)]
        raise AssertionError(f"no {tag} {fields} within {timeout} s")

    def lines(self, seconds: float) -> list[Message]:
        deadline, messages = time.monotonic() + seconds, self.pending
        self.pending = []
        while time.monotonic() < deadline:
            messages += [e for e in self.decoder.feed(self.port.read(4096)) if isinstance(e, Message)]
        return messages


@pytest.fixture
def board(tiny_model, tmp_path):
    with VirtualBoard(tiny_model, "litert", link=tmp_path / "board", hello_interval_s=0.3, host_timeout_s=0.5,
                      stats_interval_s=0.3) as board:
        yield board


@pytest.fixture
def client(board):
    client = Client(str(board.link))
    yield client
    client.port.close()


def test_hello_handshake_clip_and_bye(board, client, tiny_model, synth_data):
    hello = client.expect("HELLO")
    config = ModelDir(tiny_model).config
    assert hello.fields["proto"] == "1" and hello.fields["timing"] == "host" and hello.fields["mode"] == "mic"
    assert hello.get_list("labels") == list(config.labels)
    assert hello.get_int("clock_hz") == config.board.clock_hz and hello.get_int("sr") == config.audio.sample_rate
    # The recognizer setting, as the firmware's pipeline_describe_recognizer sends it.
    assert [int(t) for t in hello.get_list("thresholds")] == list(config.label_thresholds)
    assert (hello.get_int("avg_ms"), hello.get_int("suppress_ms"), hello.get_int("min_count"),
            hello.get_int("calibrated")) == (config.recognizer.average_window_ms, config.recognizer.suppression_ms,
                                             config.recognizer.minimum_count, 0)

    seq = client.send(FrameType.HELLO, hello_payload())
    client.expect("MODE", mode="host", reason="handshake")
    client.expect("ACK", seq=seq, type=FrameType.HELLO)
    assert client.expect("HELLO").fields["mode"] == "host"

    clip = _yes_clip(synth_data, config.audio.sample_rate, config.clip_samples).astype("<i2").tobytes()
    client.expect("ACK", seq=client.send(FrameType.CLIP_BEGIN, clip_payload(42)))
    for start in range(0, len(clip), 1024):
        client.send(FrameType.AUDIO, clip[start:start + 1024])
    client.send(FrameType.CLIP_END, clip_payload(42))
    result = client.expect("RESULT", clip=42)
    scores = result.get_int_list("scores")
    assert len(scores) == len(config.labels) and result.get_int("idx") == int(np.argmax(scores))
    assert result.get_int("est_m4_us") == board.est_m4_us > 0 and result.get_int("fe_us") > 0

    seq = client.send(FrameType.BYE)
    client.expect("MODE", mode="mic", reason="command")
    client.expect("ACK", seq=seq, type=FrameType.BYE)


def test_crc_error_truncated_frame_and_bad_headers_are_reported_and_survived(board, client):
    client.expect("HELLO")
    good = encode_frame(FrameType.HELLO, 7, hello_payload())
    corrupted = bytearray(encode_frame(FrameType.HELLO, 5, hello_payload()))
    corrupted[-1] ^= 0xFF
    client.port.write(bytes(corrupted))
    client.expect("ERR", code="crc", seq=5)
    client.port.write(good)  # the next frame is processed normally
    client.expect("ACK", seq=7)

    # A frame cut short: its declared length swallows the next frame, whose bytes are rescanned after the CRC fails.
    truncated = encode_frame(FrameType.AUDIO, 8, bytes(200))[:50]
    client.port.write(truncated + b"noise" + encode_frame(FrameType.CLIP_BEGIN, 9, clip_payload(1)) + bytes(200))
    client.expect("ERR", code="crc", seq=8)
    client.expect("ACK", seq=9, type=FrameType.CLIP_BEGIN)

    client.port.write(b"\xa5\x5a" + struct.pack("<BHH", 2, 10, 2000))  # length over 1024
    client.expect("ERR", code="length", seq=10)
    client.port.write(encode_frame(0x7E, 11))
    client.expect("ERR", code="type", seq=11)
    client.port.write(encode_frame(FrameType.CLIP_END, 12, b"\x01"))  # wrong payload size for its type
    client.expect("ERR", code="length", seq=12)
    client.port.write(encode_frame(FrameType.CLIP_END, 13, clip_payload(1)))
    client.expect("RESULT", clip=1)
    stats = client.expect("STATS")
    assert stats.get_int("bad_frames") >= 4
    assert stats.get_int("lines_dropped") == 0


def test_a_frame_cut_off_by_the_host_does_not_swallow_the_next_hello(board, client):
    board.host_timeout_s = 5.0  # the timeout resets the decoder too: keep it out of the way
    client.expect("ACK", seq=client.send(FrameType.HELLO, hello_payload()))
    cut = encode_frame(FrameType.AUDIO, 90, bytes(1024))[:100]  # the host died mid-frame (issue 10)
    client.port.write(cut)
    time.sleep(0.25)  # over the 100 ms idle limit
    client.expect("ACK", seq=client.send(FrameType.HELLO, hello_payload()), timeout=1)
    # A HELLO sent right behind the cut lands inside its declared length: the rescan finds it.
    client.port.write(cut + encode_frame(FrameType.HELLO, 91, hello_payload()))
    client.expect("ACK", seq=91, timeout=1)
    assert board.bad_frames == 2


def test_a_clip_gives_its_result_and_no_detection(board, client, monkeypatch):
    board.host_timeout_s = 5.0
    client.expect("ACK", seq=client.send(FrameType.HELLO, hello_payload()))
    # Every stride "detects" a keyword, so only the clip rule can keep DETs out.
    step = Step(1000, np.zeros(len(board.labels), np.uint8), core.Detection(0, 250, 1000), 1, 1, 1)
    monkeypatch.setattr(board.pipeline, "feed", lambda samples: [step])
    detections = board.sent["DET"]
    client.expect("ACK", seq=client.send(FrameType.CLIP_BEGIN, clip_payload(5)))
    client.send(FrameType.AUDIO, bytes(1024))
    client.send(FrameType.CLIP_END, clip_payload(5))
    client.expect("RESULT", clip=5)
    assert board.sent["DET"] == detections
    client.send(FrameType.AUDIO, bytes(1024))  # streaming outside a clip detects as the microphone does
    client.expect("DET")


def test_protocol_version_and_mode_errors(board, client):
    client.expect("HELLO")
    client.send(FrameType.AUDIO, bytes(64))  # no handshake yet
    client.expect("ERR", code="mode")
    client.send(FrameType.HELLO, hello_payload(9))
    assert client.expect("ERR", code="proto").fields["detail"] == "host_9_device_1"


def test_periodic_hello_stops_after_a_frame_and_host_mode_times_out(board, client):
    hellos = [m for m in client.lines(1.0) if m.tag == "HELLO"]
    assert len(hellos) >= 3  # start-up + every 0.3 s in this board
    client.send(FrameType.HELLO, hello_payload())
    client.expect("MODE", mode="host")
    client.expect("MODE", mode="mic", reason="timeout", timeout=3)
    # The HELLO answering the frame is the last one: no periodic HELLO once a host has spoken.
    assert not [m for m in client.lines(0.7) if m.tag == "HELLO"]


def test_reconnect_behind_the_same_link(board, client):
    client.expect("HELLO")
    old_path = board.path
    board.disconnect()
    assert board.path != old_path or board.link.resolve() == board.path
    with pytest.raises(serial.SerialException):
        for _ in range(20):
            client.port.read(1)
    again = Client(str(board.link))
    try:
        again.expect("ACK", seq=again.send(FrameType.HELLO, hello_payload()))
    finally:
        again.port.close()
