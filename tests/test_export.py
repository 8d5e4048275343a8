"""Export: what the firmware compiles is exactly what was trained, and described by the model itself."""

import dataclasses
import json
import re

import numpy as np
import pytest

from kws import config as config_module
from kws.common.paths import REPO_ROOT
from kws.evaluation.evaluate import ModelDir
from kws.evaluation.runtime import Int8Model, model_ops
from kws.frontends.microfrontend import Frontend, Int8Scaling
from kws.training.export import ExportError, check_board_numerics, check_budget, export, to_int8_tflite
from kws.training.firmware_files import (
    RESOLVER_METHODS,
    TABLES_BEGIN,
    TABLES_END,
    HeaderError,
    header_calibrated,
    set_frontend_tables,
    set_recognizer_defines,
)

SHIPPED = sorted(path.parent for path in (REPO_ROOT / "models").glob("*/model_settings.h"))


def _macros(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (KWS_\w+) (.+)$", header, flags=re.M))


def test_c_array_is_the_tflite_byte_for_byte(tiny_model):
    source = (tiny_model / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model_data[]" in source
    body = source.split("{", 1)[1].split("}", 1)[0]
    parsed = bytes(int(token, 16) for token in re.findall(r"0x([0-9a-f]{2})", body))
    tflite = (tiny_model / "model.tflite").read_bytes()
    assert parsed == tflite
    assert f"g_model_data_len = {len(tflite)};" in source


def test_model_settings_are_read_from_the_model(tiny_model):
    model_dir = ModelDir(tiny_model)
    config = model_dir.config
    macros = _macros((tiny_model / "model_settings.h").read_text())
    model = Int8Model(model_dir.tflite, "tflm")
    scaling = Int8Scaling.from_quantization(model.input.scale, model.input.zero_point)
    labels = re.findall(r'"([^"]*)"', macros["KWS_LABELS"])
    assert labels == list(config.labels)
    assert int(macros["KWS_NUM_LABELS"]) == model.output_size == len(labels)
    assert macros["KWS_LABEL_REPORTABLE"] == "{" + ", ".join(
        "1" if label in config.keywords.words else "0" for label in labels) + "}"
    assert float(macros["KWS_INPUT_SCALE"].rstrip("f")) == pytest.approx(model.input.scale, rel=1e-6)
    assert int(macros["KWS_INPUT_ZERO_POINT"]) == model.input.zero_point
    assert int(macros["KWS_OUTPUT_ZERO_POINT"]) == model.output.zero_point
    assert np.float32(macros["KWS_OUTPUT_SCALE"].rstrip("f")) == np.float32(model.output.scale)
    assert int(macros["KWS_FEATURE_MULTIPLIER"]) == scaling.multiplier
    assert int(macros["KWS_FEATURE_SHIFT"]) == scaling.shift
    assert (int(macros["KWS_NUM_SLICES"]), int(macros["KWS_SLICE_SIZE"])) == model.input_shape[1:3]
    assert int(macros["KWS_FE_NUM_CHANNELS"]) == config.frontend.channels
    assert float(macros["KWS_FE_PCAN_OFFSET"].rstrip("f")) == config.frontend.pcan_offset
    assert int(macros["KWS_RECOGNIZER_THRESHOLD"]) == config.recognizer.threshold
    assert macros["KWS_RECOGNIZER_THRESHOLDS"] == "{" + ", ".join(map(str, config.label_thresholds)) + "}"
    assert TABLES_BEGIN in (tiny_model / "model_settings.h").read_text()
    assert macros["KWS_RECOGNIZER_CALIBRATED"] == "0" and not header_calibrated(
        (tiny_model / "model_settings.h").read_text())
    assert int(macros["KWS_ARENA_SIZE"]) >= 1.25 * _card(tiny_model)["sizes"]["arena_measured_bytes"]
    # The arena the header promises really runs the model in TFLM.
    Int8Model(model_dir.tflite, "tflm", arena_size=int(macros["KWS_ARENA_SIZE"])).predict(
        np.zeros((1, *model.input_shape[1:3]), np.int8))


def _table_macros(header: str) -> dict[str, np.ndarray]:
    """The KWS_FE_* tables and numbers of a header, continued lines joined."""
    joined = header.replace("\\\n", "")
    block = joined[joined.index(TABLES_BEGIN):joined.index(TABLES_END)]
    return {name: np.array(re.findall(r"-?\d+", value), np.int64)
            for name, value in re.findall(r"^#define KWS_FE_(\w+) (.+)$", block, flags=re.M)}


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda path: path.name)
def test_header_carries_the_host_front_ends_tables(model_dir):
    """The board uses these instead of computing its own with float code (feature_provider.cpp): they must be what
    the host's microfrontend, which made the training features, computes for the model's parameters; for the MLPerf
    MFCCs, the tables kws.frontends.mfcc computes, which the C takes instead of constants of its own."""
    config = config_module.load(model_dir / "config.toml")
    header = (model_dir / "model_settings.h").read_text()
    if config.frontend.kind == "mlperf_mfcc":
        from kws.frontends.mfcc import default_tables

        arrays = {name: np.array(values.replace("\n", "").split(","), np.int64) for name, values in
                  re.findall(r"static const \w+ KWS_MFCC_(\w+)\[\d+\] = \{([^}]*)\};", header)}
        expected = default_tables().c_arrays()
        assert set(arrays) == {name.upper() for name in expected}
        for name, array in expected.items():
            np.testing.assert_array_equal(arrays[name.upper()], array.values, err_msg=name)
        return
    tables = Frontend(config.frontend, config.audio.sample_rate).tables()
    macros = _table_macros(header)
    expected = {"WINDOW_COEFFICIENTS": tables.window, "CHANNEL_FREQUENCY_STARTS": tables.channel_frequency_starts,
                "CHANNEL_WEIGHT_STARTS": tables.channel_weight_starts, "CHANNEL_WIDTHS": tables.channel_widths,
                "FILTERBANK_WEIGHTS": tables.weights, "FILTERBANK_UNWEIGHTS": tables.unweights,
                "PCAN_GAIN_LUT": tables.pcan_gain_lut, "FILTERBANK_START_INDEX": [tables.filterbank_start_index],
                "FILTERBANK_END_INDEX": [tables.filterbank_end_index],
                "NOISE_EVEN_SMOOTHING_Q14": [tables.even_smoothing], "NOISE_ODD_SMOOTHING_Q14": [tables.odd_smoothing],
                "NOISE_MIN_SIGNAL_REMAINING_Q14": [tables.min_signal_remaining]}
    assert set(expected) <= set(macros)
    for name, values in expected.items():
        np.testing.assert_array_equal(macros[name], values, err_msg=name)


def test_frontend_tables_are_replaced_in_place_and_added_to_an_old_header():
    """What `python -m kws.training.export --frontend-tables` does to an exported model: only the tables' lines change."""
    header = (SHIPPED[0] / "model_settings.h").read_text()
    config = config_module.load(SHIPPED[0] / "config.toml")
    assert set_frontend_tables(header, config) == header
    start, end = header.index(TABLES_BEGIN), header.index(TABLES_END) + len(TABLES_END) + 2
    old = header[:start] + header[end:]  # as written before the tables existed
    assert TABLES_BEGIN not in old and "#define KWS_FE_SCALE_SHIFT" in old
    assert set_frontend_tables(old, config) == header
    with pytest.raises(HeaderError, match="Model input"):
        set_frontend_tables(old.replace("// Model input:", "// input:"), config)


def test_resolver_registers_exactly_the_models_ops(tiny_model):
    header = (tiny_model / "model_settings.h").read_text()
    ops = model_ops((tiny_model / "model.tflite").read_bytes())
    registered = re.findall(r"\(resolver\)\.(\w+)\(\) == kTfLiteOk", header)
    assert sorted(registered) == sorted(RESOLVER_METHODS[op] for op in ops)
    assert int(_macros(header)["KWS_OP_COUNT"]) == len(ops) == len(registered)


def test_tflm_and_litert_give_identical_int8_outputs(tiny_model):
    tflite = (tiny_model / "model.tflite").read_bytes()
    tflm, litert = Int8Model(tflite, "tflm"), Int8Model(tflite, "litert")
    rng = np.random.default_rng(0)
    features = rng.integers(-128, 128, size=(40, *tflm.input_shape[1:3]), dtype=np.int8)
    np.testing.assert_array_equal(tflm.predict(features), litert.predict(features))


def test_export_refuses_a_model_over_budget(tiny_run, tmp_path):
    config, data, model_path = tiny_run
    small = dataclasses.replace(config, targets=dataclasses.replace(config.targets, flash_bytes=1000))
    with pytest.raises(ExportError, match=r"model flatbuffer is \d+ bytes, over the budget of 1000 bytes"):
        export(small, model_path, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match=r"tensor arena is 300000 bytes, over the budget of 262144 bytes"):
        check_budget(dataclasses.replace(config, targets=dataclasses.replace(config.targets, arena_bytes=10**6)),
                     1000, 300_000)


def _card(model_dir):
    import json

    return json.loads((model_dir / "model_card.json").read_text())


def test_quantization_aware_training_exports_and_evaluates(tiny_run, tmp_path):
    from kws.evaluation.evaluate import evaluate
    from kws.training.train import QAT_MODEL_NAME, train

    config, data, _ = tiny_run
    qat = dataclasses.replace(config, training=dataclasses.replace(config.training, epochs=2, qat=True, qat_epochs=1))
    model_path = train(qat, data, tmp_path / "run", verbose=False)
    assert model_path.name == QAT_MODEL_NAME
    export(qat, model_path, data, tmp_path / "model")
    model_dir = ModelDir(tmp_path / "model")
    assert model_dir.float_model_path.name == QAT_MODEL_NAME
    result = evaluate(model_dir, data.raw["validation"], data.targets["validation"], backend="litert")
    # QAT's fake quantization mimics the int8 model: the two agree on nearly every clip.
    assert abs(result["int8"]["accuracy"] - result["float"]["accuracy"]) <= 0.1


def test_without_restore_best_every_epoch_runs_and_the_last_is_kept(tiny_run, tmp_path):
    import csv

    import tf_keras

    from kws.training.train import train

    config, data, _ = tiny_run
    last = dataclasses.replace(config, training=dataclasses.replace(config.training, epochs=3, patience=1,
                                                                    restore_best=False))
    model_path = train(last, data, tmp_path / "run", verbose=False)
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["best"]["epoch"] == summary["best"]["epochs_run"] == 3
    with open(tmp_path / "run" / "history_float.csv", newline="") as handle:
        final_accuracy = float(list(csv.DictReader(handle))[-1]["val_accuracy"])
    model = tf_keras.models.load_model(model_path)
    _, accuracy = model.evaluate(data.float("validation"), data.targets["validation"], verbose=0)
    assert accuracy == pytest.approx(final_accuracy, abs=1e-6)
    assert summary["best"]["val_accuracy"] == round(accuracy, 4)


def test_weight_average_keeps_the_average_not_the_last_weights(tiny_run, tmp_path):
    import tf_keras

    from kws.training.train import train

    config, data, _ = tiny_run
    runs = {}
    for average in (0.0, 0.9):
        averaged = dataclasses.replace(config, training=dataclasses.replace(
            config.training, epochs=3, restore_best=False, weight_average=average))
        runs[average] = tf_keras.models.load_model(train(averaged, data, tmp_path / str(average), verbose=False))
    # The same seed and batches: the runs differ only in the weights kept at the end.
    last, mean = (runs[a].get_layer(index=1).get_weights()[0] for a in (0.0, 0.9))
    assert last.shape == mean.shape and not np.allclose(last, mean)


def test_frequency_warp_moves_a_formant_by_the_factor():
    from kws.config import from_dict
    from kws.training.train import frequency_warp

    config = from_dict({})
    batch = np.zeros((3, 49, 40, 1), np.float32)
    batch[:, :, 20] = 1.0
    warped = frequency_warp(config, batch, np.array([1.0, 1.15, 0.85]))
    np.testing.assert_array_equal(warped[0], batch[0])
    peaks = [float(np.sum(np.arange(40) * w[0, :, 0]) / np.sum(w[0, :, 0])) for w in warped]
    assert peaks[1] > 20.5 and peaks[2] < 19.5  # up for a shorter vocal tract, down for a longer one
    assert warped.shape == batch.shape and np.all(warped[:, :, :15] == 0)


def _dense_model():
    import tf_keras

    inputs = tf_keras.Input((8, 4, 1))
    outputs = tf_keras.layers.Dense(5, activation="softmax")(tf_keras.layers.Flatten()(inputs))
    return tf_keras.Model(inputs, outputs)


def test_export_refuses_per_channel_dense_weights_the_board_library_miscomputes():
    import tensorflow as tf

    model = _dense_model()
    representative = np.random.default_rng(0).normal(size=(20, 8, 4, 1)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)  # TFLite's default: per-channel dense weights
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([example[np.newaxis]] for example in representative)
    with pytest.raises(ExportError, match=r"FULLY_CONNECTED operator\(s\) \[\d+\] have per-channel weight scales"):
        check_board_numerics(converter.convert())
    # The exporter's own conversion quantizes dense weights per tensor, which the guard accepts.
    check_board_numerics(to_int8_tflite(model, representative))


# The recognizer lines of a header written before per-keyword thresholds (the shipped models' form).
OLD_RECOGNIZER_LINES = """\
// Recognizer (posterior smoothing) defaults\r
#define KWS_RECOGNIZER_AVERAGE_WINDOW_MS 1000\r
#define KWS_RECOGNIZER_THRESHOLD 230\r
#define KWS_RECOGNIZER_SUPPRESSION_MS 1000\r
#define KWS_RECOGNIZER_MINIMUM_COUNT 3\r
#define KWS_INFERENCE_EVERY_STRIDES 3\r
"""


def test_set_recognizer_defines_upgrades_a_header_without_per_keyword_thresholds():
    config = config_module.from_dict({"keywords": {"words": ["yes", "no"]},
                                      "recognizer": {"threshold": 210, "thresholds": {"no": 140},
                                                     "average_window_ms": 500}})
    header = "#define KWS_NUM_LABELS 4\r\n" + OLD_RECOGNIZER_LINES + "#define KWS_ARENA_SIZE 16816\r\n"
    upgraded = set_recognizer_defines(header, config)
    assert upgraded.splitlines(keepends=True) == [
        "#define KWS_NUM_LABELS 4\r\n", "// Recognizer (posterior smoothing) defaults\r\n",
        "#define KWS_RECOGNIZER_AVERAGE_WINDOW_MS 500\r\n", "#define KWS_RECOGNIZER_THRESHOLD 210\r\n",
        "#define KWS_RECOGNIZER_SUPPRESSION_MS 1500\r\n", "#define KWS_RECOGNIZER_MINIMUM_COUNT 3\r\n",
        "#define KWS_RECOGNIZER_THRESHOLDS {210, 210, 210, 140}\r\n", "#define KWS_RECOGNIZER_CALIBRATED 1\r\n",
        "#define KWS_INFERENCE_EVERY_STRIDES 3\r\n", "#define KWS_ARENA_SIZE 16816\r\n"]
    assert header_calibrated(upgraded)
    # Once upgraded, the lines are replaced in place: a second calibration changes only the numbers.
    again = set_recognizer_defines(upgraded, dataclasses.replace(
        config, recognizer=dataclasses.replace(config.recognizer, thresholds={"yes": 99})))
    assert [a for a, b in zip(again.splitlines(), upgraded.splitlines(), strict=True) if a != b] == [
        "#define KWS_RECOGNIZER_THRESHOLDS {210, 210, 99, 210}"]
    with pytest.raises(HeaderError, match="re-export"):
        set_recognizer_defines("#define KWS_NUM_LABELS 4\n", config)


def test_recognizer_thresholds_in_the_config_name_keywords():
    with pytest.raises(config_module.ConfigError, match="recognizer.thresholds.maybe"):
        config_module.from_dict({"keywords": {"words": ["yes"]}, "recognizer": {"thresholds": {"maybe": 100}}})
    with pytest.raises(config_module.ConfigError, match="0..255"):
        config_module.from_dict({"keywords": {"words": ["yes"]}, "recognizer": {"thresholds": {"yes": 256}}})
