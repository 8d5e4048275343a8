"""Export: full-integer int8 .tflite, and the C files the firmware compiles with no hand edits.

Everything in the generated header is read from the model or the config: labels in output order, the front-end
parameters, the input quantization and the integer feature scaling derived from it, the arena size measured by the
TFLM runtime (plus a stated margin), and the exact list of ops for the resolver.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws import __version__
from kws.common.paths import portable
from kws.config import Config
from kws.data.features import Features
from kws.evaluation.runtime import (
    TFLITE_SCHEMA_VERSION,
    Int8Model,
    measure_arena,
    model_ops,
    per_channel_weight_ops,
    schema_version,
)
from kws.evaluation.runtime import model_id as runtime_model_id
from kws.frontends.dispatch import int8_scaling
from kws.frontends.microfrontend import Frontend

# The board runs CMSIS-NN kernels, whose scratch buffers (e.g. for im2col) the reference kernels of the host runtime
# do not request, and the host's 64-bit pointers make some bookkeeping larger: measured host arenas were within
# ±20% of on-target figures for these models, so the firmware gets the measured size plus this margin.
ARENA_MARGIN_FRACTION = 0.25
ARENA_MARGIN_BYTES = 1024
BOARD_FLASH_BYTES = 1024 * 1024
BOARD_RAM_BYTES = 256 * 1024

# MicroMutableOpResolver method for each builtin op (tensorflow/lite/micro/micro_mutable_op_resolver.h).
RESOLVER_METHODS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected", "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MUL": "AddMul", "PAD": "AddPad", "QUANTIZE": "AddQuantize", "RELU": "AddRelu",
    "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "SHAPE": "AddShape", "SOFTMAX": "AddSoftmax",
    "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice", "PACK": "AddPack", "TRANSPOSE": "AddTranspose",
}


# Op and quantization combinations that the pinned TFLM Arduino library computes differently from TFLM and LiteRT on
# the host, found by running its kernels on a Cortex-M4 (`kws m4`): each name maps to what goes wrong.
BOARD_LIBRARY = "Chirale_TensorFLowLite 2.0.0"
PER_CHANNEL_MISCOMPUTED = {
    "FULLY_CONNECTED": "its CMSIS-NN fully-connected kernel applies the first output channel's weight scale to every "
                       "channel",
}


class ExportError(ValueError):
    """A model the board cannot take; the message gives the numbers."""


@dataclass(frozen=True)
class Exported:
    out_dir: Path
    tflite_bytes: int
    arena_measured: int
    arena_size: int
    ops: list[str]
    scaling: object  # kws.frontends.dispatch.int8_scaling: the board's front-end integers -> int8 input


def load_keras(model_path: Path):  # noqa: ANN201 - tf_keras.Model, imported lazily
    """The trained float model, for inference and conversion (a QAT model needs tfmot's scope to deserialize its
    wrappers). Not compiled: nothing here trains it, and restoring the optimizer's state logs "Skipping variable
    loading for optimizer ..." whenever the saved state does not match, which reads like a broken model."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    with tfmot.quantization.keras.quantize_scope():
        return tf_keras.models.load_model(model_path, compile=False)


def to_int8_tflite(model: object, representative: np.ndarray) -> bytes:
    """Full-integer quantization with int8 input and output, calibrated on representative float features."""
    import tensorflow as tf

    from kws.common.quiet import native_stderr_only_silenced

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # One weight scale per dense layer: the pinned library's CMSIS-NN fully-connected kernel applies the first
    # channel's scale to every channel (see check_board_numerics). Convolutions stay per channel: they are exact.
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True

    def samples():
        for example in representative:
            yield [example[np.newaxis].astype(np.float32)]

    converter.representative_dataset = samples
    with native_stderr_only_silenced():  # the converter prints its settings ("fully_quantize: 0, ...") natively
        return converter.convert()


def export(config: Config, model_path: Path, data: Features, out_dir: Path, recipe: list[str] | None = None,
           training: dict | None = None) -> Exported:
    """Quantizes the trained model and writes model.tflite, the C array, model_settings.h and model_card.json.

    `recipe` (the commands that made the model) and `training` (time, best epoch, parameters) go into the card.
    """
    model = load_keras(model_path)
    rng = np.random.default_rng(config.training.seed)
    train = data.float("train")
    representative = train[rng.choice(len(train), size=min(500, len(train)), replace=False)]
    tflite = to_int8_tflite(model, representative)
    ops = model_ops(tflite)
    missing = [op for op in ops if op not in RESOLVER_METHODS]
    if missing:
        raise ExportError(f"the model uses {', '.join(missing)}, which the firmware's op resolver table lacks")
    check_board_numerics(tflite)
    if schema_version(tflite) != TFLITE_SCHEMA_VERSION:
        raise ExportError(f"schema version {schema_version(tflite)}, the firmware expects {TFLITE_SCHEMA_VERSION}")
    arena_measured = measure_arena(tflite)
    arena_size = (int(arena_measured * (1 + ARENA_MARGIN_FRACTION)) + ARENA_MARGIN_BYTES + 15) // 16 * 16
    check_budget(config, len(tflite), arena_size)

    interpreter = Int8Model(tflite, "tflm", arena_size)
    expected_shape = (1, config.num_slices, config.frontend.channels, 1)
    if interpreter.input_shape != expected_shape or interpreter.output_size != len(config.labels):
        raise ExportError(f"model input {interpreter.input_shape} / {interpreter.output_size} outputs do not match "
                          f"the config's {expected_shape} / {len(config.labels)} labels")
    scaling = int8_scaling(config, interpreter.input.scale, interpreter.input.zero_point)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.tflite").write_bytes(tflite)
    if model_path.resolve() != (out_dir / model_path.name).resolve():
        shutil.copyfile(model_path, out_dir / model_path.name)
    if config.source is not None and config.source.resolve() != (out_dir / "config.toml").resolve():
        shutil.copyfile(config.source, out_dir / "config.toml")
    model_id = runtime_model_id(tflite)
    (out_dir / "model_data.h").write_text(MODEL_DATA_H)
    (out_dir / "model_data.cc").write_text(c_array(tflite, config.name))
    (out_dir / "model_settings.h").write_text(
        model_settings_h(config, model_id, interpreter, scaling, arena_measured, arena_size, ops))
    card = {
        "name": config.name, "model_id": model_id, "labels": list(config.labels),
        "architecture": config.model.architecture, "config": config.to_dict(), "data": data.summary,
        "sizes": {"tflite_bytes": len(tflite), "arena_measured_bytes": arena_measured, "arena_bytes": arena_size,
                  "arena_margin": f"{ARENA_MARGIN_FRACTION:.0%} + {ARENA_MARGIN_BYTES} B"},
        "ops": ops,
        "quantization": {"input_scale": interpreter.input.scale, "input_zero_point": interpreter.input.zero_point,
                         "output_scale": interpreter.output.scale, "output_zero_point": interpreter.output.zero_point,
                         "feature_multiplier": scaling.multiplier, "feature_shift": scaling.shift},
        "recipe": recipe or [],
        "training": training or {},
        "software": software_versions(),
    }
    update_card(out_dir, card)
    return Exported(out_dir, len(tflite), arena_measured, arena_size, ops, scaling)


def check_board_numerics(tflite: bytes) -> None:
    """Refuses a model whose outputs the board's library would compute differently from the host's."""
    for op, reason in PER_CHANNEL_MISCOMPUTED.items():
        layers = per_channel_weight_ops(tflite, op)
        if layers:
            raise ExportError(
                f"{op} operator(s) {layers} have per-channel weight scales, and {BOARD_LIBRARY} {reason}: the board "
                f"would not compute what the host measured. Quantize them per tensor (to_int8_tflite does).")


def check_budget(config: Config, flash: int, arena: int) -> None:
    """Refuses a model over the config's budget or the nRF52840's memory, giving both numbers."""
    for what, size, budget, where in (
        ("model flatbuffer", flash, config.targets.flash_bytes, "targets.flash_bytes"),
        ("tensor arena", arena, config.targets.arena_bytes, "targets.arena_bytes"),
        ("model flatbuffer", flash, BOARD_FLASH_BYTES, "the nRF52840's 1 MB flash"),
        ("tensor arena", arena, BOARD_RAM_BYTES, "the nRF52840's 256 KB RAM"),
    ):
        if size > budget:
            raise ExportError(f"{what} is {size} bytes, over the budget of {budget} bytes ({where})")


def update_card(out_dir: Path, fields: dict, command: str | None = None) -> dict:
    """Merges fields into model_card.json (export, eval, report and calibrate each add theirs); `command`, the
    command line that changed the folder, ends the card's recipe in place of an earlier run of the same subcommand
    (whose section it has just replaced), so the recipe rebuilds what is there."""
    path = out_dir / "model_card.json"
    card = json.loads(path.read_text()) if path.exists() else {}
    card.update(fields)
    if command:
        step = command.split()[:2]  # "kws calibrate"
        card["recipe"] = [line for line in card.get("recipe", []) if line.split()[:2] != step] + [command]
    card = portable(card)  # the card is tracked in git: no absolute path of this machine in it
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return card


def software_versions() -> dict:
    from importlib.metadata import version

    packages = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tflite-micro", "numpy")
    return {"python": platform.python_version(), "nano-kws": __version__, **{p: version(p) for p in packages}}


MODEL_DATA_H = """\
// Generated by `kws export`. Do not edit.
#ifndef KWS_MODEL_DATA_H_
#define KWS_MODEL_DATA_H_

extern const unsigned char g_model_data[];
extern const unsigned int g_model_data_len;

#endif  // KWS_MODEL_DATA_H_
"""


def c_array(tflite: bytes, name: str) -> str:
    """The flatbuffer as a 16-byte aligned C array (TFLM reads tensors in place from flash)."""
    rows = [", ".join(f"0x{byte:02x}" for byte in tflite[i:i + 12]) for i in range(0, len(tflite), 12)]
    body = ",\n    ".join(rows)
    return (f"// Generated by `kws export` from the {name} model. Do not edit.\n"
            f'#include "model_data.h"\n\n'
            f"alignas(16) const unsigned char g_model_data[] = {{\n    {body}}};\n"
            f"const unsigned int g_model_data_len = {len(tflite)};\n")


def model_settings_h(config: Config, model_id: str, model: Int8Model, scaling: object, arena_measured: int,
                     arena_size: int, ops: list[str]) -> str:
    fe, rec = config.frontend, config.recognizer
    labels = ", ".join(f'"{label}"' for label in config.labels)
    reportable = ", ".join("1" if label in config.keywords.words else "0" for label in config.labels)
    register = " && \\\n".join(f"   (resolver).{RESOLVER_METHODS[op]}() == kTfLiteOk" for op in ops)
    f = _c_float
    return f"""\
// Generated by `kws export` from the {config.name} model ({model_id}). Do not edit: re-export instead.
#ifndef KWS_MODEL_SETTINGS_H_
#define KWS_MODEL_SETTINGS_H_

#define KWS_MODEL_NAME "{config.name}"
#define KWS_MODEL_ID "{model_id}"
#define KWS_TFLITE_SCHEMA_VERSION {TFLITE_SCHEMA_VERSION}

// Audio
#define KWS_SAMPLE_RATE {config.audio.sample_rate}
#define KWS_CLIP_SAMPLES {config.clip_samples}

{frontend_defines(config)}
{frontend_tables_block(config)}
// Model input: KWS_NUM_SLICES slices of KWS_SLICE_SIZE int8 features.
// int8 = clamp(KWS_INPUT_ZERO_POINT + ((raw * KWS_FEATURE_MULTIPLIER + 2^(KWS_FEATURE_SHIFT-1)) >> KWS_FEATURE_SHIFT))
// maps the front end's {"Q16 MFCCs" if fe.kind == "mlperf_mfcc" else "uint16 output"} to the input quantization (scale {model.input.scale!r}).
#define KWS_NUM_SLICES {config.num_slices}
#define KWS_SLICE_SIZE {fe.channels}
#define KWS_INPUT_SCALE {f(model.input.scale)}
#define KWS_INPUT_ZERO_POINT {model.input.zero_point}
#define KWS_FEATURE_MULTIPLIER {scaling.multiplier}
#define KWS_FEATURE_SHIFT {scaling.shift}
#define KWS_OUTPUT_SCALE {f(model.output.scale)}
#define KWS_OUTPUT_ZERO_POINT {model.output.zero_point}

// Labels in the model's output order; only keywords are reported as detections.
#define KWS_NUM_LABELS {len(config.labels)}
#define KWS_LABELS {{{labels}}}
#define KWS_LABEL_REPORTABLE {{{reportable}}}

// Recognizer (posterior smoothing): window, per-label thresholds (output order), suppression, minimum count.
// KWS_RECOGNIZER_CALIBRATED 0: the config's defaults; `kws calibrate` fits them on streams and sets it to 1.
{recognizer_defines(config)}
#define KWS_INFERENCE_EVERY_STRIDES {rec.inference_every_strides}

// Tensor arena: {arena_measured} bytes measured with the TFLM runtime + {ARENA_MARGIN_FRACTION:.0%} + {ARENA_MARGIN_BYTES} bytes
// for CMSIS-NN scratch buffers.
#define KWS_ARENA_SIZE {arena_size}

// Ops the model uses; the resolver registers exactly these. True if every one was registered.
#define KWS_OP_COUNT {len(ops)}
#define KWS_REGISTER_OPS(resolver) \\
  ({register})

#endif  // KWS_MODEL_SETTINGS_H_
"""


def frontend_defines(config: Config) -> str:
    """The KWS_FE_* parameters of model_settings.h: which front end the firmware builds (KWS_FE_MLPERF_MFCC: the
    MLPerf MFCCs of kws_core, else the microfrontend) and the parameters the training features used."""
    fe, f = config.frontend, _c_float
    common = [f"#define KWS_FE_WINDOW_MS {fe.window_ms}", f"#define KWS_FE_STRIDE_MS {fe.stride_ms}",
              f"#define KWS_FE_STRIDE_SAMPLES {config.stride_samples}", f"#define KWS_FE_NUM_CHANNELS {fe.channels}"]
    if fe.kind == "mlperf_mfcc":
        return "\n".join(["// MLPerf Tiny KWS MFCCs: firmware/lib/kws_core/kws_mfcc.c, the training features' own code",
                          "#define KWS_FE_MLPERF_MFCC 1", *common]) + "\n"
    return "\n".join(["// TFLM microfrontend (the training features used the same parameters)",
                      "#define KWS_FE_MLPERF_MFCC 0", *common,
                      f"#define KWS_FE_LOWER_BAND_HZ {f(fe.lower_band_hz)}",
                      f"#define KWS_FE_UPPER_BAND_HZ {f(fe.upper_band_hz)}",
                      f"#define KWS_FE_SMOOTHING_BITS {fe.smoothing_bits}",
                      f"#define KWS_FE_EVEN_SMOOTHING {f(fe.even_smoothing)}",
                      f"#define KWS_FE_ODD_SMOOTHING {f(fe.odd_smoothing)}",
                      f"#define KWS_FE_MIN_SIGNAL_REMAINING {f(fe.min_signal_remaining)}",
                      f"#define KWS_FE_ENABLE_PCAN {int(fe.pcan)}",
                      f"#define KWS_FE_PCAN_STRENGTH {f(fe.pcan_strength)}",
                      f"#define KWS_FE_PCAN_OFFSET {f(fe.pcan_offset)}",
                      f"#define KWS_FE_GAIN_BITS {fe.gain_bits}",
                      f"#define KWS_FE_ENABLE_LOG {int(fe.log)}",
                      f"#define KWS_FE_SCALE_SHIFT {fe.scale_shift}"]) + "\n"


TABLES_BEGIN = "// Front-end tables (begin)"
TABLES_END = "// Front-end tables (end)"


def frontend_tables_block(config: Config) -> str:
    """The KWS_FE_* integer tables of model_settings.h: those the host's microfrontend computed from the parameters
    above, which made the training features. The board's library computes its own with float code whose rounding
    depends on how it is compiled (-mfloat-abi=softfp contracts a multiply-add of the filterbank's channel edges into
    a VFMA and changes two weights of channel 39), so feature_provider.cpp uses these instead. For the MLPerf MFCCs:
    the constant tables kws_mfcc.c takes (kws.frontends.mfcc computes them; the C has none of its own)."""
    if config.frontend.kind == "mlperf_mfcc":
        from kws.frontends.mfcc import default_tables

        tables = default_tables()
        sizes = [f"#define KWS_MFCC_{name.upper()} {value}" for name, value in tables.c_scalars().items()]
        return "\n".join([TABLES_BEGIN, "// kws_mfcc_tables from kws.frontends.mfcc (numpy float64, rounded): what training used.",
                          "#include <stdint.h>", *sizes, tables.c_header("KWS_MFCC").rstrip("\n"), TABLES_END]) + "\n"
    tables = Frontend(config.frontend, config.audio.sample_rate).tables()
    lists = {"WINDOW_COEFFICIENTS": tables.window, "CHANNEL_FREQUENCY_STARTS": tables.channel_frequency_starts,
             "CHANNEL_WEIGHT_STARTS": tables.channel_weight_starts, "CHANNEL_WIDTHS": tables.channel_widths,
             "FILTERBANK_WEIGHTS": tables.weights, "FILTERBANK_UNWEIGHTS": tables.unweights}
    if config.frontend.pcan:
        lists["PCAN_GAIN_LUT"] = tables.pcan_gain_lut
    scalars = {"FILTERBANK_START_INDEX": tables.filterbank_start_index,
               "FILTERBANK_END_INDEX": tables.filterbank_end_index, "NOISE_EVEN_SMOOTHING_Q14": tables.even_smoothing,
               "NOISE_ODD_SMOOTHING_Q14": tables.odd_smoothing,
               "NOISE_MIN_SIGNAL_REMAINING_Q14": tables.min_signal_remaining}
    lines = [TABLES_BEGIN,
             "// What FrontendPopulateState computes from the parameters above with float arithmetic, as the host's",
             "// microfrontend (the training features') computed it; feature_provider.cpp uses these instead of the",
             "// library's own, whose rounding depends on compiler flags (e.g. -mfloat-abi=softfp).",
             *(f"#define KWS_FE_{name} {value}" for name, value in scalars.items()),
             *(f"#define KWS_FE_{name} {_c_list(values)}" for name, values in lists.items()),
             TABLES_END]
    return "\n".join(lines) + "\n"


def _c_list(values: np.ndarray, per_line: int = 16) -> str:
    """A braced initializer, `per_line` values to a continued line."""
    rows = [", ".join(str(int(v)) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return "{ \\\n    " + ", \\\n    ".join(rows) + "}"


def set_frontend_tables(header: str, config: Config) -> str:
    """model_settings.h text with its front-end tables written from the config (replaced, or inserted before the
    model input's section in a header from before them); every other byte unchanged. `kws.training.export --frontend-tables
    DIR` applies it to an exported model without re-quantizing it."""
    block = frontend_tables_block(config)
    if TABLES_BEGIN in header:
        start, end = header.index(TABLES_BEGIN), header.index(TABLES_END) + len(TABLES_END) + 1
        return header[:start] + block + header[end:]
    anchor = "// Model input:"
    if anchor not in header:
        raise ExportError(f"model_settings.h has no '{anchor}' section to put the front-end tables before")
    at = header.index(anchor)
    return header[:at] + block + "\n" + header[at:]


def recognizer_defines(config: Config, calibrated: bool = False) -> str:
    """The KWS_RECOGNIZER_* lines of model_settings.h (export writes them, calibrate rewrites them).

    KWS_RECOGNIZER_THRESHOLDS holds one threshold per label in output order (the keywords' own from
    recognizer.thresholds, the others KWS_RECOGNIZER_THRESHOLD); KWS_RECOGNIZER_CALIBRATED says whether `kws
    calibrate` chose the setting on streams (1) or it is the config's default (0)."""
    rec = config.recognizer
    values = {"AVERAGE_WINDOW_MS": rec.average_window_ms, "THRESHOLD": rec.threshold,
              "THRESHOLDS": "{" + ", ".join(str(t) for t in config.label_thresholds) + "}",
              "SUPPRESSION_MS": rec.suppression_ms, "MINIMUM_COUNT": rec.minimum_count,
              "CALIBRATED": int(calibrated)}
    return "\n".join(f"#define KWS_RECOGNIZER_{name} {value}" for name, value in values.items())


def header_calibrated(header: str) -> bool:
    """Whether a model_settings.h holds a setting `kws calibrate` wrote (KWS_RECOGNIZER_CALIBRATED 1)."""
    return any(line.split()[:3] == ["#define", "KWS_RECOGNIZER_CALIBRATED", "1"] for line in header.splitlines())


def set_recognizer_defines(header: str, config: Config, calibrated: bool = True) -> str:
    """model_settings.h text with its KWS_RECOGNIZER_* lines replaced by the config's; every other byte unchanged.

    A header from before per-keyword thresholds (no KWS_RECOGNIZER_THRESHOLDS or _CALIBRATED line) is upgraded:
    the missing lines go right after its last KWS_RECOGNIZER_* line."""
    new_lines = {line.split()[1]: line for line in recognizer_defines(config, calibrated).splitlines()}
    lines = header.splitlines(keepends=True)
    found: dict[str, int] = {}
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) >= 2 and words[0] == "#define" and words[1] in new_lines:
            ending = line[len(line.rstrip("\r\n")):]
            lines[i] = new_lines[words[1]] + ending
            found[words[1]] = i
    if not found:
        raise ExportError("model_settings.h has no KWS_RECOGNIZER_* line: re-export the model")
    last = max(found.values())
    ending = lines[last][len(lines[last].rstrip("\r\n")):] or "\n"
    missing = [line + ending for name, line in new_lines.items() if name not in found]
    lines[last + 1:last + 1] = missing
    return "".join(lines)


def _c_float(value: float) -> str:
    return np.format_float_positional(np.float32(value), trim="0") + "f"  # shortest text that round-trips


def refresh_frontend_tables(model_dir: Path) -> bool:
    """Writes the front-end tables into an exported model's model_settings.h from its config.toml; whether the
    header changed. model.tflite and model_data.cc stay as they are."""
    from kws.config import load

    header_path = model_dir / "model_settings.h"
    header = header_path.read_text()
    updated = set_frontend_tables(header, load(model_dir / "config.toml"))
    header_path.write_text(updated)
    return updated != header


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kws.training.export", description="maintenance of exported models")
    parser.add_argument("--frontend-tables", nargs="+", required=True, metavar="DIR", type=Path,
                        help="write the front-end tables into these models' model_settings.h")
    args = parser.parse_args(argv)
    for model_dir in args.frontend_tables:
        changed = refresh_frontend_tables(model_dir)
        print(f"{model_dir / 'model_settings.h'}: {'updated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
