"""The MLPerf Tiny reference model on the integer C front end (kws.frontends.mfcc) against TensorFlow's (kws.training.teacher.mlperf_mfcc).

For each labelled data folder (Speech Commands' official test-set layout: <root>/<word>/*.wav, `_silence_` is
silence, `_unknown_` and any word outside the model's ten is unknown) it prints:

- the features' error, C minus TensorFlow, per coefficient: max and mean absolute value over every frame of every
  clip, and the share of int8 model inputs that differ (both mapped with the int8 model's input quantization,
  rounded half up: kws_mfcc_quantize for C);
- the accuracy of the float and the int8 reference model on both front ends, and the difference. The int8 model
  also runs on TensorFlow's features truncated to int8, the convention kws.training.teacher uses (its published values).

    python scripts/mfcc_check.py ../shared/data/speech_commands_v0.02_test_dev ../shared/data/speech_commands_v0.02_test_dev2

The acceptance: the C front end within 0.3 points of TensorFlow's with the float model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kws.common.quiet import native_stderr_silenced
from kws.data import audio
from kws.frontends import mfcc
from kws.training.teacher import mlperf_mfcc

LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence", "unknown"]
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf_tiny_kws_ref"


def read_folder(root: Path, samples: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(clips int16 (n, samples), class indices, unreadable count) of every <root>/<word>/*.wav."""
    clips, targets, skipped = [], [], []
    for path in audio.audio_files(root, "*/*"):
        word = path.parent.name
        if word == "_background_noise_":
            continue
        clip = audio.read_audio_or_skip(path, 16000, skipped)
        if clip is None:
            continue
        clips.append(audio.fit_length(clip, samples))
        label = "silence" if word == "_silence_" else word
        targets.append(LABELS.index(label if label in LABELS else "unknown"))
    return np.asarray(clips, np.int16).reshape(-1, samples), np.asarray(targets), len(skipped)


class Model:
    """A .tflite classifier run in batches: float with LiteRT's default kernels (as the published values were
    measured), int8 with the reference kernels (as the board)."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert import interpreter as litert

        content = path.read_bytes()
        with native_stderr_silenced():
            self.interpreter = litert.Interpreter(model_content=content)
            self.input = self.interpreter.get_input_details()[0]
            if self.input["dtype"] == np.int8:
                self.interpreter = litert.Interpreter(
                    model_content=content,
                    experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.output = self.interpreter.get_output_details()[0]
        self.quantization = self.input["quantization"]
        self._batch = 0

    def predict(self, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Top class of each of inputs (n, 49, 10), float or int8 as the model takes."""
        shape = list(self.input["shape"][1:])
        predicted = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            if self._batch != len(batch):
                self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *shape])
                with native_stderr_silenced():
                    self.interpreter.allocate_tensors()
                self._batch = len(batch)
            self.interpreter.set_tensor(self.input["index"], batch.reshape(len(batch), *shape).astype(self.input["dtype"]))
            self.interpreter.invoke()
            predicted.append(self.interpreter.get_tensor(self.output["index"]).argmax(axis=1))
        return np.concatenate(predicted)


def round_int8(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float features -> int8 rounded half up and saturated, as kws_mfcc_quantize maps the C features."""
    return np.clip(np.floor(features.astype(np.float64) / scale + 0.5) + zero_point, -128, 127).astype(np.int8)


def check(root: Path, float_model: Model, int8_model: Model) -> None:
    params = mfcc.default_tables().params
    clips, targets, skipped = read_folder(root, params.clip_samples)
    print(f"{root}: {len(clips)} clips{f', {skipped} unreadable' if skipped else ''}")
    with native_stderr_silenced():
        tf_features = np.concatenate([mlperf_mfcc(clips[i:i + 256]) for i in range(0, len(clips), 256)])
    front = mfcc.Mfcc()
    q = np.stack([front.clip(clip) for clip in clips])
    c_features = (q / np.float32(2**mfcc.Q)).astype(np.float32)
    error = np.abs(c_features.astype(np.float64) - tf_features)
    print("  |C - TF| per coefficient, max:  " + " ".join(f"{v:.4f}" for v in error.max(axis=(0, 1))))
    print("  |C - TF| per coefficient, mean: " + " ".join(f"{v:.1e}" for v in error.mean(axis=(0, 1))))
    # the peak over samples [0, 15840) vs all 16,000: clips whose maximum is in the last 160 samples
    moved = clips[:, :params.frames * params.stride + params.window - params.stride].max(axis=1) < clips.max(axis=1)
    if moved.any():
        rest = error[~moved]
        print(f"  {int(moved.sum())} clips have their maximum in the last 160 samples; without them max "
              f"{rest.max():.4f}, mean {rest.mean():.1e}")
    scale, zero_point = int8_model.quantization
    multiplier, shift = mfcc.quantization_multiplier(scale)
    c_int8 = mfcc.quantize(q, multiplier, shift, zero_point)
    tf_int8 = round_int8(tf_features, scale, zero_point)
    differ = c_int8 != tf_int8
    print(f"  int8 inputs (scale {scale:.4f}, zero point {zero_point}) that differ: {differ.mean():.4%} "
          f"({int(differ.sum())} of {differ.size}; by more than 1: {int((np.abs(c_int8.astype(int) - tf_int8) > 1).sum())})")
    tf_trunc = np.clip(np.trunc(tf_features / scale + zero_point), -128, 127).astype(np.int8)
    rows = [("float", float_model.predict(tf_features), float_model.predict(c_features)),
            ("int8", int8_model.predict(tf_int8), int8_model.predict(c_int8))]
    print(f"  {'model':<6} {'TF':>8} {'C':>8} {'C - TF':>8}  clips predicted differently")
    for name, tf_pred, c_pred in rows:
        tf_acc, c_acc = np.mean(tf_pred == targets), np.mean(c_pred == targets)
        print(f"  {name:<6} {tf_acc:8.2%} {c_acc:8.2%} {100 * (c_acc - tf_acc):+8.2f}  {int((tf_pred != c_pred).sum())}")
    print(f"  int8 on TF features truncated (kws.training.teacher's convention): {np.mean(int8_model.predict(tf_trunc) == targets):.2%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="*", type=Path, help="labelled data folders (official test-set layout)")
    parser.add_argument("--models", type=Path, default=MODELS,
                        help="folder of kws_ref_model_float32.tflite and kws_ref_model.tflite")
    args = parser.parse_args(argv)
    if not args.data:
        parser.print_usage()
        print("no data folders given: nothing to check", file=sys.stderr)
        return 0
    float_model = Model(args.models / "kws_ref_model_float32.tflite")
    int8_model = Model(args.models / "kws_ref_model.tflite")
    for root in args.data:
        check(root, float_model, int8_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
