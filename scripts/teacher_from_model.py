"""A trained float model as a teacher file: its Keras model converted to a float .tflite, for `[teacher] model`.

The backbone recipe fine-tunes the MLPerf reference first, then prunes it and distils the pruned model from the
fine-tuned one; the teacher runs on the training audio only (kws.training.teacher), never on the board.

    python scripts/teacher_from_model.py runs/backbone64/model.keras runs/backbone64/teacher.tflite
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kws.training.export import load_keras


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained model.keras")
    parser.add_argument("out", type=Path, help="the teacher .tflite to write")
    args = parser.parse_args()
    import tensorflow as tf

    tflite = tf.lite.TFLiteConverter.from_keras_model(load_keras(args.model)).convert()
    args.out.write_bytes(tflite)
    print(f"{args.out}: {len(tflite):,} bytes, float, outputs in the model's config's label order")


if __name__ == "__main__":
    main()
