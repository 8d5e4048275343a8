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
from kws.export import to_int8_tflite
from kws.quiet import native_stderr_only_silenced

tf.config.list_physical_devices("GPU")  # tries cuInit: an E-level line without a GPU
inputs = tf_keras.Input((10, 8, 1))
model = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(inputs)))
with native_stderr_only_silenced():
    to_int8_tflite(model, np.ones((4, 10, 8, 1), np.float32))
    warnings.warn("a Python warning still shows")
    print("so does Python's stderr", file=sys.stderr)
"""


def test_tensorflow_import_and_conversion_print_no_native_lines():
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", CONVERT_A_TINY_MODEL], capture_output=True, text=True, env=env,
                            check=True)
    native = [line for line in result.stderr.splitlines()
              if re.match(r"[IWEF]\d{4} ", line) or "absl::InitializeLog" in line or "fully_quantize" in line]
    assert not native, result.stderr
    assert "a Python warning still shows" in result.stderr and "so does Python's stderr" in result.stderr
