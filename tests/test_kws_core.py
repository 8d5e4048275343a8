"""The firmware's portable C core: its own unit tests on the host and on a Cortex-M4F in QEMU, and agreement
between the C (through kws.board.core) and the pure-Python host side (kws.board.protocol)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kws.board import core, protocol
from kws.board.protocol import FrameType, Garbage, LineDecoder, Message, encode_frame

FIRMWARE_TEST = Path(__file__).resolve().parents[1] / "firmware" / "test"
CROSS_TOOLS = {"arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
               "qemu-system-arm": "qemu-system-arm", "make": "make"}


def make(*targets: str) -> str:
    result = subprocess.run(["make", "-C", str(FIRMWARE_TEST), *targets], capture_output=True, text=True,
                            check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make {' '.join(targets)} failed:\n{output[-4000:]}"
    return output


def last_line(output: str, marker: str) -> str:
    return [line for line in output.splitlines() if marker in line][-1]


def test_c_unit_tests_pass_on_host() -> None:
    summary = last_line(make("host-test"), " passed, ")
    passed, failed = (int(part.split()[0]) for part in summary.split(", "))
    assert failed == 0 and passed > 500, summary


def test_cortex_m4_runs_the_tests_and_matches_the_host_bit_for_bit() -> None:
    # CI installs the cross toolchain and QEMU, so their absence is a failure, not a skip.
    missing = [tool for tool in CROSS_TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({CROSS_TOOLS[tool] for tool in missing}))
        pytest.fail(f"missing {', '.join(missing)}: apt-get install --no-install-recommends {packages}")
    output = make("m4-test", "compare", "size")
    assert last_line(output, " passed, ").endswith(", 0 failed")
    assert "outputs are identical" in output
    assert "kws_recognizer.o" in output  # the size table


# ---- frames: Python encoder -> C decoder ----

def test_python_frames_decode_in_c_through_garbage_and_corruption() -> None:
    hello = encode_frame(FrameType.HELLO, 1, protocol.hello_payload())
    audio = encode_frame(FrameType.AUDIO, 2, np.arange(-256, 256, dtype="<i2").tobytes())
    corrupt = bytearray(encode_frame(FrameType.CLIP_BEGIN, 3, protocol.clip_payload(7)))
    corrupt[8] ^= 0x40
    oversize = b"\xa5\x5a\x02\x04\x00\x01\x08"  # AUDIO, seq 4, length 2049
    unknown = encode_frame(0x42, 5)
    bad_size = encode_frame(FrameType.CLIP_END, 6, b"\x01\x02")
    end = encode_frame(FrameType.CLIP_END, 7, protocol.clip_payload(0xDEADBEEF))
    stream = b"\x00\xa5\xa5" + hello + b"\x5a\xa5" + audio + bytes(corrupt) + oversize + unknown + bad_size + end
    expected = [
        core.Frame(FrameType.HELLO, 1, b"\x01"),
        core.Frame(FrameType.AUDIO, 2, np.arange(-256, 256, dtype="<i2").tobytes()),
        core.FrameError("crc", 3, FrameType.CLIP_BEGIN),
        core.FrameError("length", 4, FrameType.AUDIO),
        core.FrameError("type", 5, 0x42),
        core.FrameError("length", 6, FrameType.CLIP_END),
        core.Frame(FrameType.CLIP_END, 7, b"\xef\xbe\xad\xde"),
    ]
    assert core.FrameDecoder().feed(stream) == expected
    decoder = core.FrameDecoder()
    assert [event for byte in stream for event in decoder.feed(bytes([byte]))] == expected


def test_split_audio_frames_carry_whole_samples() -> None:
    pcm = np.arange(1500, dtype="<i2").tobytes()
    payloads = protocol.split_audio(pcm)
    assert [len(p) for p in payloads] == [1024, 1024, 952]
    decoder = core.FrameDecoder()
    frames = decoder.feed(b"".join(encode_frame(FrameType.AUDIO, i, p) for i, p in enumerate(payloads)))
    assert b"".join(frame.payload for frame in frames) == pcm


def test_a_frame_the_host_cut_off_is_dropped_after_100_ms_of_silence() -> None:
    # Issue 10: the host died 100 bytes into a 1,024-byte AUDIO frame and came back with a HELLO.
    cut = encode_frame(FrameType.AUDIO, 1, bytes(1024))[:100]
    hello = encode_frame(FrameType.HELLO, 2, protocol.hello_payload())
    answer = [core.Frame(FrameType.HELLO, 2, protocol.hello_payload())]
    decoder = core.FrameDecoder()
    assert decoder.feed(cut) == [] and not decoder.idle(1000, fed=True)
    assert decoder.feed(hello) == []  # inside the cut frame's declared length
    assert not decoder.idle(1050, fed=True)
    assert not decoder.idle(1150, fed=False)  # 100 ms of silence is still a frame in transit
    assert decoder.idle(1151, fed=False)
    assert decoder.feed(b"") == answer  # the rescan behind the cut frame's sync finds the HELLO
    assert not decoder.idle(5000, fed=False)  # nothing pending, nothing to drop
    assert decoder.feed(hello) == answer


def test_reset_forgets_a_partial_frame() -> None:
    hello = encode_frame(FrameType.HELLO, 3, protocol.hello_payload())
    decoder = core.FrameDecoder()
    decoder.feed(encode_frame(FrameType.AUDIO, 1, bytes(1024))[:100])
    decoder.reset()
    assert decoder.feed(hello) == [core.Frame(FrameType.HELLO, 3, protocol.hello_payload())]


# ---- lines: C builder -> Python decoder ----

def test_c_lines_parse_in_python() -> None:
    line = core.format_line("RESULT", {"clip": 4000000000, "label": "yes", "idx": 2, "score": 231,
                                       "scores": np.array([3, 0, 231, 21], dtype=np.uint8), "fe_us": -1,
                                       "labels": ["silence", "unknown", "yes", "no"], "detail": "a b*c=d"})
    decoder = LineDecoder()
    events = decoder.feed(b"\r\nnoise\n" + line.replace(b"\n", b"\r\n") + line[:-3] + b"00\n" + line)
    assert [type(event) for event in events] == [Garbage, Message, Garbage, Message]
    message = events[1]
    assert message == events[3]
    assert message.tag == "RESULT"
    assert message.get_int("clip") == 4000000000
    assert message.get_int("fe_us") == -1
    assert message.get_int_list("scores") == [3, 0, 231, 21]
    assert message.get_list("labels") == ["silence", "unknown", "yes", "no"]
    assert message.fields["detail"] == "a_b_c_d"
    assert message.get_int("missing", 5) == 5
    with pytest.raises(ValueError):
        message.get_int("label")
    assert (decoder.messages, decoder.garbage) == (2, 2)


def test_c_line_builder_drops_what_does_not_fit() -> None:
    builder = core.LineBuilder("STATS", capacity=40)
    builder.add_int("steps", 12).add_str("mode", "x" * 30).add_int("overruns", 0)
    line = builder.end()
    assert builder.truncated
    assert line.startswith(b"STATS steps=12 overruns=0 *")
    assert isinstance(LineDecoder().feed(line)[0], Message)
    assert core.format_line("bad", {"a": 1}) == b""
    assert len(core.format_line("ERR", {f"k{i}": "v" * 200 for i in range(4)})) <= protocol.LINE_MAX


def test_crcs_agree_with_the_check_values() -> None:
    assert protocol.crc8(b"123456789") == 0xF4
    assert protocol.crc16_ccitt(b"123456789") == 0x29B1


# ---- features ----

def reference_scale(raw: np.ndarray, multiplier: int, shift: int, zero_point: int) -> np.ndarray:
    half = 1 << (shift - 1) if shift else 0
    return np.clip(zero_point + ((raw.astype(np.int64) * multiplier + half) >> shift), -128, 127).astype(np.int8)


def test_scale_features_matches_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        shape = tuple(rng.integers(1, 20, size=rng.integers(1, 4)))
        raw = rng.integers(0, 65536, size=shape, dtype=np.uint16)
        raw.flat[::3] %= 1024  # mostly the microfrontend's usual range
        multiplier, shift, zp = int(rng.integers(0, 2**31)), int(rng.integers(0, 63)), int(rng.integers(-128, 128))
        out = core.scale_features(raw, multiplier, shift, zp)
        assert out.shape == raw.shape and out.dtype == np.int8
        np.testing.assert_array_equal(out, reference_scale(raw, multiplier, shift, zp))


def test_scale_features_is_the_rounded_float_mapping() -> None:
    # float feature = raw * 10 / 256, int8 = round(float / scale) + zp (what training quantizes)
    scale, zp, shift = 0.1017, -128, 20
    multiplier = round(10 / 256 / scale * (1 << shift))
    raw = np.arange(0, 1200, dtype=np.uint16)
    expected = np.clip(np.floor(raw * 10 / 256 / scale + 0.5) + zp, -128, 127)
    assert np.abs(core.scale_features(raw, multiplier, shift, zp) - expected).max() <= 1
    with pytest.raises(ValueError):
        core.scale_features(raw, -1, shift, zp)
    with pytest.raises(ValueError):
        core.scale_features(np.array([70000]), multiplier, shift, zp)


def test_scores_from_int8() -> None:
    out = np.array([[-128, -1, 0, 127]], dtype=np.int8)
    np.testing.assert_array_equal(core.scores_from_int8(out, -128), [[0, 127, 128, 255]])


# ---- recognizer ----

def reference_recognizer(events: list[tuple[int, list[int]]], reportable: list[bool], window: int,
                         threshold: int | list[int], suppression: int,
                         minimum_count: int) -> list[tuple[int, int, int] | None]:
    """A direct transcription of the rules in kws_recognizer.h (upstream RecognizeCommands + the mask + one
    threshold per label when `threshold` is a list)."""
    thresholds = threshold if isinstance(threshold, list) else [threshold] * len(reportable)
    history: list[tuple[int, list[int]]] = []
    previous: tuple[int, int] | None = None
    out: list[tuple[int, int, int] | None] = []
    for time_ms, scores in events:
        history = [h for h in history if time_ms - h[0] <= window][-63:] + [(time_ms, scores)]
        if len(history) < minimum_count or time_ms - history[0][0] < window // 4:
            out.append(None)
            continue
        averages = [sum(h[1][i] for h in history) // len(history) for i in range(len(scores))]
        top = max(range(len(scores)), key=lambda i: (averages[i], -i))
        new = averages[top] > thresholds[top] and (previous is None or top != previous[0]
                                             or time_ms - previous[1] > suppression)
        if new:
            previous = (top, time_ms)
        out.append((top, averages[top], time_ms) if new and reportable[top] else None)
    return out


def test_recognizer_hand_built_sequence() -> None:
    recognizer = core.Recognizer(4, [False, False, True, True], 1000, 200, 1500, 3)
    yes, no, silence = [0, 5, 250, 0], [0, 5, 0, 250], [250, 5, 0, 0]
    sequence = [(t, silence) for t in range(0, 1000, 100)] + [(t, yes) for t in range(1000, 4000, 100)] + \
        [(t, no) for t in range(4000, 5000, 100)]
    detections = [d for t, s in sequence if (d := recognizer.process(t, np.array(s, dtype=np.uint8)))]
    # Silence is never reported. At 1800 ms the window (800..1800, bounds inclusive) holds 2 silences and 9 yes:
    # yes averages 9 * 250 // 11 = 204 > 200. Still on top, yes is repeated once more than 1500 ms passed (3400).
    # "no" takes over at 4800 ms, with 9 of the 11 results in its window.
    assert [(d.label_index, d.time_ms) for d in detections] == [(2, 1800), (2, 3400), (3, 4800)]
    assert all(d.score > 200 for d in detections)
    with pytest.raises(ValueError):
        recognizer.process(4000, np.array(yes, dtype=np.uint8))
    recognizer.reset()
    assert recognizer.recognize(0, np.array(yes, dtype=np.uint8)).ready is False


def test_recognizer_matches_reference_on_random_streams() -> None:
    rng = np.random.default_rng(7)
    for run in range(20):
        n = int(rng.integers(2, 8))
        reportable = [bool(flag) for flag in rng.integers(0, 2, size=n)]
        window, threshold = int(rng.integers(1, 1500)), int(rng.integers(100, 250))
        suppression, minimum_count = int(rng.integers(0, 2000)), int(rng.integers(1, 6))
        times = np.cumsum(rng.integers(0, 120, size=300))
        label, events = 0, []
        for t in times:
            if rng.random() < 0.03:
                label = int(rng.integers(0, n))
            scores = rng.integers(0, 40, size=n)
            scores[label] = rng.integers(150, 256)
            events.append((int(t), [int(s) for s in scores]))
        per_label = [int(t) for t in rng.integers(100, 250, size=n)] if run % 2 else None
        recognizer = core.Recognizer(n, reportable, window, threshold, suppression, minimum_count, per_label)
        got = [recognizer.process(t, np.array(s, dtype=np.uint8)) for t, s in events]
        expected = reference_recognizer(events, reportable, window, per_label or threshold, suppression,
                                        minimum_count)
        assert [(d.label_index, d.score, d.time_ms) if d else None for d in got] == expected


def test_recognizer_tops_are_the_averages_any_threshold_sees() -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.integers(10, 80, size=400))
    scores = rng.integers(0, 256, size=(400, 4)).astype(np.uint8)
    top, score = core.Recognizer(4, [False, True, True, True], 300, 255, 0, 3).tops(times, scores)
    for threshold in (100, 180):
        probe = core.Recognizer(4, [False, True, True, True], 300, threshold, 0, 3)
        results = [probe.recognize(int(t), s) for t, s in zip(times, scores, strict=True)]
        assert [r.top_index for r in results] == top.tolist()
        assert [r.top_score for r in results] == score.tolist()
    with pytest.raises(ValueError, match="thresholds for"):
        core.Recognizer(4, [False] * 4, 300, 200, 0, 3, thresholds=[1, 2])
