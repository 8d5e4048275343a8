"""TensorFlow's native log lines stay out of the terminal; Python's own warnings and errors do not."""

import os
import re
import subprocess
import sys

CONVERT_A_TINY_MODEL = """
import sys, warnings
import kws
import numpy as np
import tensorflow as tf
import tf_keras
from kws.training.export import to_int8_tflite
from kws.common.quiet import native_stderr_only_silenced

tf.config.list_physical_devices("GPU")  # tries cuInit: an E-level line without a GPU
inputs = tf_keras.Input((10, 8, 1))
model = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(inputs)))
to_int8_tflite(model, np.ones((4, 10, 8, 1), np.float32))  # as kws quickstart and scripts call it: no wrapper
with native_stderr_only_silenced():
    warnings.warn("a Python warning still shows")
    print("so does Python's stderr", file=sys.stderr)
"""

# A model saved compiled but never trained holds an optimizer without its slots: loading it compiled logs
# "WARNING:absl:Skipping variable loading for optimizer 'RMSprop' ...", as every kws eval and kws report did.
SAVE_A_COMPILED_MODEL = """
import sys
import kws
import tf_keras
inputs = tf_keras.Input((10, 8, 1))
model = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(inputs)))
model.compile(optimizer=tf_keras.optimizers.RMSprop(), loss="sparse_categorical_crossentropy")
model.save(sys.argv[1])
"""
LOAD_FOR_INFERENCE = """
import sys
import kws
from kws.training.export import load_keras
load_keras(sys.argv[1])
"""


def test_tensorflow_import_and_conversion_print_no_native_lines():
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", CONVERT_A_TINY_MODEL], capture_output=True, text=True, env=env,
                            check=True)
    native = [line for line in result.stderr.splitlines()
              if re.match(r"[IWEF]\d{4} ", line) or "absl::InitializeLog" in line or "fully_quantize" in line]
    assert not native, result.stderr
    assert "a Python warning still shows" in result.stderr and "so does Python's stderr" in result.stderr


def test_loading_a_model_for_inference_does_not_warn_about_its_optimizer(tmp_path):
    path = str(tmp_path / "model.keras")
    subprocess.run([sys.executable, "-c", SAVE_A_COMPILED_MODEL, path], capture_output=True, check=True)
    result = subprocess.run([sys.executable, "-c", LOAD_FOR_INFERENCE, path], capture_output=True, text=True,
                            check=True)
    assert "optimizer" not in result.stderr, result.stderr
