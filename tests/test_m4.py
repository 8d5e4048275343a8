"""The Cortex-M4 check (`kws m4`): its instruction counter, its result format and the evidence the shipped models
carry. CI cannot fetch the TFLM Arduino library the check image needs, so the shipped models' measurements are
checked for belonging to the model files beside them instead of being rerun."""

import hashlib
import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import tone_word
from kws.common.paths import REPO_ROOT
from kws.config import from_dict
from kws.cost import m4, m4_image, m4_record
from kws.cost.estimate import estimate_model
from kws.data.dataset import Clips
from kws.evaluation.evaluate import ModelDir

SHIPPED = sorted(path.parent for path in (REPO_ROOT / "models").glob("*/model.tflite"))
MIN_AGREEMENT_CLIPS = 500
MIN_STREAM_SECONDS = 60


def test_instruction_counter_counts_loops_of_known_length_under_qemu():
    image = m4_image.make_target("counter-image")
    with tempfile.TemporaryDirectory() as workdir:
        output = m4_image.run_qemu(image, Path(workdir), timeout=120)
    pairs = np.array([line.split() for line in output.splitlines()], np.int64)
    assert len(pairs) == 43
    # One SysTick tick is 40 instructions: each interval is exact to within a tick, those across the wrap too.
    assert np.all(np.abs(pairs[:, 1] - pairs[:, 0]) <= 40)


def _results(clips: int, window: int, labels: int, layers: list[str], rng: np.random.Generator) -> tuple:
    """A results.bin as model_check.cpp writes it, with the arrays that went into it."""
    windows = rng.integers(-128, 128, (clips, window), dtype=np.int8)
    outputs = rng.integers(-128, 128, (clips, labels), dtype=np.int8)
    counts = rng.integers(0, 2**32, (clips, len(m4_image.COUNT_FIELDS)), dtype=np.uint32)
    per_layer = rng.integers(0, 2**32, (clips, len(layers)), dtype=np.uint32)
    body = m4_image.RESULTS_MAGIC + struct.pack("<III", window, labels, clips)
    for i in range(clips):
        body += windows[i].tobytes() + outputs[i].tobytes() + counts[i].astype("<u4").tobytes()
        body += struct.pack("<I", len(layers)) + per_layer[i].astype("<u4").tobytes()
    stdout = f"layers {' '.join(layers)}\narena_used_bytes 123\nfrontend_heap_bytes 45\nstack_bytes 67\n"
    return body, stdout, windows, outputs, counts, per_layer


def test_results_are_read_back_exactly():
    layers = ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    body, stdout, windows, outputs, counts, per_layer = _results(3, 20, 4, layers, np.random.default_rng(0))
    run = m4_image.parse_results(body, stdout)
    np.testing.assert_array_equal(run.windows, windows)
    np.testing.assert_array_equal(run.outputs, outputs)
    np.testing.assert_array_equal(run.counts, counts)
    np.testing.assert_array_equal(run.layer_instructions, per_layer)
    assert run.layers == layers
    assert run.facts == {"arena_used_bytes": 123, "frontend_heap_bytes": 45, "stack_bytes": 67}


@pytest.mark.parametrize(("cut", "message"), [(10, "not a KWSM4R1"), (-5, "ends inside clip 2"),
                                             (None, "bytes after the last")])
def test_damaged_results_are_refused_with_the_place(cut, message):
    body, stdout, *_ = _results(3, 20, 4, ["CONV_2D"], np.random.default_rng(1))
    damaged = body + b"\0\0" if cut is None else body[:cut]
    with pytest.raises(m4_image.M4Error, match=message):
        m4_image.parse_results(damaged, stdout)


def test_layer_names_must_match_the_counts():
    body, stdout, *_ = _results(2, 8, 3, ["CONV_2D", "SOFTMAX"], np.random.default_rng(2))
    with pytest.raises(m4_image.M4Error, match="named 1 layers"):
        m4_image.parse_results(body, stdout.replace("CONV_2D ", ""))


def test_agreement_counts_each_kind_of_difference():
    body, stdout, windows, outputs, *_ = _results(4, 10, 3, ["SOFTMAX"], np.random.default_rng(3))
    run = m4_image.parse_results(body, stdout)
    host_windows, host_outputs = windows.copy(), outputs.copy()
    host_windows[0, 0] ^= 1  # clip 0: one feature differs
    host_outputs[1, 0] = np.int8(int(host_outputs[1, 0]) ^ 4)  # clip 1: one output, by 4
    result = m4.agreement(run, host_windows, host_outputs)
    assert result["features_identical"] == 3 and result["outputs_identical"] == 3
    assert result["max_output_difference"] == 4
    assert result["all_identical"] is False
    assert m4.agreement(run, windows, outputs)["all_identical"] is True


def test_the_front_end_per_stride_is_a_continuous_streams():
    """A reset clip's first stride only fills the front end's window (no slice, ~0.4 k instructions): the per-stride
    figure the schedule uses is the mean over strides that made a slice, as every stride of a stream does."""
    tflite = (SHIPPED[0] / "model.tflite").read_bytes()
    layers = [op.op for op in estimate_model(tflite).ops]
    counts = np.zeros((2, len(m4_image.COUNT_FIELDS)), np.uint32)
    for field, value in {"frontend_instructions": 400 + 49 * 89_000, "frontend_strides": 50, "frontend_slices": 49,
                         "frontend_max_stride": 92_000, "inference_instructions": 2_466_400,
                         "frontend_slice_instructions": 49 * 89_000}.items():
        counts[:, m4_image.COUNT_FIELDS.index(field)] = value
    run = m4_image.M4Run(np.zeros((2, 1), np.int8), np.zeros((2, 1), np.int8), counts,
                   np.ones((2, len(layers)), np.uint32), layers, {})
    stride = m4.instruction_summary(run, tflite, 4, 64_000_000, 1.25)["per_frontend_stride"]
    assert stride["mean"] == 89_000 and stride["mean_with_reset_clips_first_strides"] == round((400 + 49 * 89_000) / 50)


def test_schedule_load_and_the_smallest_schedule_with_headroom():
    clock, cpi = 64_000_000, 1.25
    # 2 M instructions per inference + 3 strides of 100 k at 1.25 cycles each, against 3 x 1.28 M cycles.
    load = m4.schedule(2_000_000, 100_000, 3, clock, cpi)
    assert load["load"] == pytest.approx((2_000_000 + 300_000) * 1.25 / 3_840_000, abs=1e-3)
    every = m4.smallest_schedule(2_000_000, 100_000, clock, cpi, headroom=0.2)
    assert m4.schedule(2_000_000, 100_000, every, clock, cpi)["headroom"] >= 0.2
    assert m4.schedule(2_000_000, 100_000, every - 1, clock, cpi)["headroom"] < 0.2


def test_a_folder_without_the_library_is_refused_by_name(tmp_path):
    with pytest.raises(m4_image.M4Error, match=f"{tmp_path}: not a TFLM Arduino library") as refused:
        m4_image.Library.at(tmp_path)
    assert "archive" in str(refused.value)


def test_a_missing_library_is_called_missing_with_the_offline_route(tmp_path, monkeypatch):
    """Not "not a library" for a folder that does not exist, the path as typed (relative to where kws runs), and
    the offline route beside PlatformIO's, whose registry may be out of reach."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(m4_image.M4Error) as refused:
        m4_image.Library.at("libs/Chirale_TensorFLowLite")
    message = str(refused.value)
    assert message.startswith("libs/Chirale_TensorFLowLite: missing (no such folder)")
    assert "not a TFLM" not in message
    assert "pio pkg install -e nano33ble" in message
    assert (f"git -C CLONE archive --prefix=Chirale_TensorFLowLite/ v2.0.0 | tar -x -C "
            f"{REPO_ROOT}/.pio/libdeps/nano33ble") in message  # outside the repository: its absolute path
    assert m4_image.LIBRARY_REPOSITORY in message


def test_the_clips_are_printed_as_typed_and_recorded_repository_relative():
    measurement = json.loads((SHIPPED[0] / m4_record.MEASUREMENT_FILE).read_text())
    recorded = measurement["clips"]["source"]
    assert f"clips of {recorded}" in m4_record.summary_lines(measurement)[0]
    assert m4_record.summary_lines(measurement, "data/x (all)")[0].endswith("clips of data/x (all)")


def test_the_image_build_shows_objects_built_of_those_to_build(tmp_path, capsys):
    """The library's build takes minutes: progress counts the objects make builds against its dry run's plan."""
    image = m4_image.make_target("counter-image", f"BUILD={tmp_path}", progress_label="building")
    assert image == (tmp_path / "counter_check.elf").resolve() and image.is_file()
    assert "building: 1/1 objects" in capsys.readouterr().err
    m4_image.make_target("counter-image", f"BUILD={tmp_path}", progress_label="building")  # up to date: nothing to do
    assert "building" not in capsys.readouterr().err


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda path: path.name)
def test_shipped_model_carries_a_current_m4_measurement_with_full_agreement(model_dir):
    """A model re-exported without a new M4 run fails here: the measurement names the md5 it measured."""
    measurement = m4_record.load_measurement(model_dir)
    assert measurement is not None, f"{model_dir}: no {m4_record.MEASUREMENT_FILE}; run kws m4 --model {model_dir} --save"
    tflite = (model_dir / "model.tflite").read_bytes()
    assert measurement["model"]["tflite_md5"] == hashlib.md5(tflite).hexdigest()
    agreement = measurement["agreement"]
    assert agreement["clips"] >= MIN_AGREEMENT_CLIPS
    assert agreement["all_identical"] and agreement["outputs_identical"] == agreement["clips"]
    layers = [layer["op"] for layer in measurement["instructions"]["layers"]]
    assert layers == [op.op for op in estimate_model(tflite).ops]
    # The header is part of what ran (front-end tables, recognizer setting, schedule): re-run kws m4 when it changes.
    settings = (model_dir / "model_settings.h").read_bytes()
    assert measurement["model"]["settings_md5"] == hashlib.md5(settings).hexdigest(), \
        f"{model_dir}/model_settings.h changed since {m4_record.MEASUREMENT_FILE}: run kws m4 --save again"


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda path: path.name)
def test_shipped_measurement_streams_and_checks_softfp_with_full_agreement(model_dir):
    """The board's stream (front end never reset, the window wrapping, inference every N strides, the recognizer)
    ran for at least a minute with every inference and detection identical to the host's, and the mbed core's own
    -mfloat-abi=softfp build agreed on every clip and on the stream as well as the board build's soft."""
    measurement = m4_record.load_measurement(model_dir)
    stream = measurement["stream"]
    assert stream["seconds"] >= MIN_STREAM_SECONDS and stream["all_identical"]
    every = m4._header_value(model_dir, "KWS_INFERENCE_EVERY_STRIDES")
    slices = m4._header_value(model_dir, "KWS_NUM_SLICES")
    assert stream["inferences"] == stream["host_inferences"] == (stream["strides"] - slices - 1) // every + 1
    assert stream["outputs_identical"] == stream["inferences"]
    assert stream["detections"] == stream["host_detections"] > 0 and stream["detections_identical"]
    assert {build["float_abi"] for build in measurement["other_builds"]} | {measurement["build"]["float_abi"]} == {
        "soft", "softfp"}
    assert m4_record.all_identical(measurement)
    assert all(build["stream"]["seconds"] == stream["seconds"] for build in measurement["other_builds"])


def _stream_results(strides: int, labels: int, inferred: list[int], detections: list[tuple[int, int, int]],
                    rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A stream_results.bin as model_check.cpp writes it, with the outputs and inference counts in it."""
    outputs = np.zeros((strides, labels), np.int8)
    inference = np.zeros(strides, np.uint32)
    outputs[inferred] = rng.integers(-128, 128, (len(inferred), labels), dtype=np.int8)
    inference[inferred] = rng.integers(1, 2**31, len(inferred), dtype=np.uint32)
    body = m4_image.STREAM_RESULTS_MAGIC + struct.pack("<II", strides, labels)
    for i in range(strides):
        body += struct.pack("<II", 90_000 + i, int(inference[i])) + outputs[i].tobytes()
    body += struct.pack("<I", len(detections)) + b"".join(struct.pack(m4_image.DETECTION_FORMAT, *d) for d in detections)
    return body, outputs, inference


def test_stream_results_are_read_back_and_compared_on_the_boards_clock():
    """The board stamps a detection at the end of the stride it ran in, the host pipeline at the end of the slice
    (10 ms earlier with a 30 ms window every 20 ms): the comparison puts both on the board's clock."""
    rng = np.random.default_rng(4)
    inferred, detections = [49, 53, 57], [(1080, 3, 201), (1160, 3, 230)]  # strides 53 and 57 end at 1080, 1160 ms
    body, outputs, inference = _stream_results(60, 5, inferred, detections, rng)
    run = m4_image.parse_stream_results(body, "arena_used_bytes 9\n")
    np.testing.assert_array_equal(run.outputs, outputs)
    np.testing.assert_array_equal(run.inference_instructions, inference)
    assert run.detections == detections and run.facts == {"arena_used_bytes": 9}
    host_inferred = np.zeros(60, bool)
    host_inferred[inferred] = True
    host = (host_inferred, outputs.copy(), [(53, 1070, 3, 201), (57, 1150, 3, 230)])
    result = m4.stream_agreement(run, host, 320, 16000)
    assert result["all_identical"] and result["detections_identical"] and result["host_clock_behind_ms"] == [10]
    assert result["inferences"] == result["outputs_identical"] == 3 and result["seconds"] == 1.2
    host[1][53, 0] ^= 1
    assert not m4.stream_agreement(run, host, 320, 16000)["all_identical"]
    late = (host_inferred, outputs, [(53, 1070, 3, 201), (58, 1170, 3, 230)])
    assert not m4.stream_agreement(run, late, 320, 16000)["detections_identical"]
    with pytest.raises(m4_image.M4Error, match="bytes for 2 detections"):
        m4_image.parse_stream_results(body[:-1], "")


def _selection(config, rng: np.random.Generator) -> Clips:
    """Clips of every class as data.select_clips returns them: tone words, and noise for silence."""
    audio, targets = [], []
    for target, label in enumerate(config.labels):
        for _ in range(3):
            audio.append(rng.normal(0, 300, 16000).astype(np.int16) if label == "silence" else
                         tone_word(rng, 300 + 150 * target))
            targets.append(target)
    return Clips(audio, np.array(targets), [Path(f"{i}.wav") for i in range(len(audio))], ["mem"], "all", [])


def test_the_stream_is_built_reproducibly_from_the_selection():
    config = from_dict({})
    clips = _selection(config, np.random.default_rng(5))
    first = m4.stream_audio(config, clips, 20)
    assert first.dtype == np.int16 and len(first) == 20 * 16000
    np.testing.assert_array_equal(m4.stream_audio(config, _selection(config, np.random.default_rng(5)), 20), first)
    assert np.abs(first.astype(np.int32)).max() > 3000  # words over the noise
    silent = Clips([np.zeros(16000, np.int16)] * 3, np.array([0, 0, 2]), [Path("a")] * 3, ["mem"], "all", [])
    with pytest.raises(m4_image.M4Error, match="silence clips with some noise"):
        m4.stream_audio(config, silent, 20)


def test_the_host_stream_infers_on_the_boards_schedule():
    """The reference the board's stream is compared with: fed stride by stride, the first inference when the window
    is full (slice 49, in stride 50: the first slice needs 30 ms), then every KWS_INFERENCE_EVERY_STRIDES strides."""
    model_dir = ModelDir(SHIPPED[0])
    config = model_dir.config
    audio = m4.stream_audio(config, _selection(config, np.random.default_rng(6)), 4)
    inferred, outputs, _ = m4.host_stream_reference(model_dir, audio)
    every = config.recognizer.inference_every_strides
    assert np.flatnonzero(inferred).tolist() == list(range(config.num_slices, len(audio) // 320, every))
    assert np.all(outputs[~inferred] == 0) and outputs[inferred].any()


def test_a_measurement_of_another_model_is_refused(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"new model")
    (tmp_path / m4_record.MEASUREMENT_FILE).write_text(json.dumps({"model": {"tflite_md5": "0" * 32}}))
    with pytest.raises(m4_image.M4Error, match="measured another model"):
        m4_record.load_measurement(tmp_path)
