"""Export: full-integer int8 .tflite, checked against what the board's library computes and the budgets, and the C
files the firmware compiles with no hand edits (written by kws.training.firmware_files: everything in the generated
header is read from the model or the config: labels in output order, the front-end parameters, the input
quantization and the integer feature scaling derived from it, the arena size measured by the TFLM runtime plus a
stated margin, and the exact list of ops for the resolver), and the model card."""

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
from kws.training.firmware_files import (
    ARENA_MARGIN_BYTES,
    ARENA_MARGIN_FRACTION,
    MODEL_DATA_H,
    RESOLVER_METHODS,
    c_array,
    model_settings_h,
    refresh_frontend_tables,
)

BOARD_FLASH_BYTES = 1024 * 1024
BOARD_RAM_BYTES = 256 * 1024

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
