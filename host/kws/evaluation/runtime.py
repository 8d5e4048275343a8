"""Running an int8 .tflite on the host, the way the board runs it.

The TFLM Python runtime (`tflite-micro`) is the reference: it is the interpreter and kernels the board runs (the
board swaps in CMSIS-NN kernels, which TFLM tests to be bit-exact with the reference ones). ai-edge-litert with its
default delegates off computes identical outputs and is many times faster, so bulk evaluation uses it;
`tests/test_export.py` checks the two agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws.common.quiet import native_stderr_silenced

BACKENDS = ("tflm", "litert")
TFLITE_SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int


def _schema():  # noqa: ANN202 - generated flatbuffer module
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def model_ops(tflite: bytes) -> list[str]:
    """The builtin op names the model uses (e.g. CONV_2D), sorted: what the firmware's resolver must register."""
    from tflite_micro.python.tflite_micro.runtime import (
        convert_bytearray_to_object,
        get_builtin_code_from_operator_code,
    )

    schema = _schema()
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = convert_bytearray_to_object(bytearray(tflite))
    used = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators or ():
            opcode = model.operatorCodes[op.opcodeIndex]
            code = get_builtin_code_from_operator_code(opcode)
            if code == schema.BuiltinOperator.CUSTOM:
                raise ValueError(f"the model uses a custom op ({opcode.customCode!r}), which the firmware cannot run")
            used.add(names[code])
    return sorted(used)


def per_channel_weight_ops(tflite: bytes, op_name: str) -> list[int]:
    """Indices of the `op_name` operators whose weights (input 1) carry more than one quantization scale."""
    from tflite_micro.python.tflite_micro.runtime import (
        convert_bytearray_to_object,
        get_builtin_code_from_operator_code,
    )

    code_wanted = getattr(_schema().BuiltinOperator, op_name)
    model = convert_bytearray_to_object(bytearray(tflite))
    found = []
    for subgraph in model.subgraphs:
        for index, op in enumerate(subgraph.operators or ()):
            if get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]) != code_wanted:
                continue
            quantization = subgraph.tensors[op.inputs[1]].quantization
            if quantization is not None and quantization.scale is not None and len(quantization.scale) > 1:
                found.append(index)
    return found


def model_id(tflite: bytes) -> str:
    """The short id the firmware's HELLO and the model card carry: the first 8 hex digits of the SHA-256."""
    import hashlib

    return hashlib.sha256(tflite).hexdigest()[:8]


def schema_version(tflite: bytes) -> int:
    return int(_schema().Model.GetRootAsModel(bytearray(tflite), 0).Version())


class Int8Model:
    """An int8-in, int8-out classifier; `predict` takes int8 features of shape (n, slices, channels)."""

    def __init__(self, tflite: bytes, backend: str = "tflm", arena_size: int | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        if backend == "tflm":
            from tflite_micro.python.tflite_micro import runtime

            self._interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=arena_size or 512 * 1024)
            input_details = self._interpreter.get_input_details(0)
            output_details = self._interpreter.get_output_details(0)
            params_in = input_details["quantization_parameters"]
            params_out = output_details["quantization_parameters"]
        else:
            from ai_edge_litert import interpreter as litert

            self._interpreter = litert.Interpreter(
                model_content=tflite,
                experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self._interpreter.allocate_tensors()
            input_details = self._interpreter.get_input_details()[0]
            output_details = self._interpreter.get_output_details()[0]
            params_in = input_details["quantization_parameters"]
            params_out = output_details["quantization_parameters"]
            self._input_index, self._output_index = input_details["index"], output_details["index"]
        if input_details["dtype"] != np.int8 or output_details["dtype"] != np.int8:
            raise ValueError("the model must have int8 input and output (export with full-integer quantization)")
        self.input_shape = tuple(int(d) for d in input_details["shape"])
        self.output_size = int(output_details["shape"][-1])
        self.input = Quantization(float(params_in["scales"][0]), int(params_in["zero_points"][0]))
        self.output = Quantization(float(params_out["scales"][0]), int(params_out["zero_points"][0]))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """int8 outputs, shape (n, classes), one invocation per example as on the board."""
        features = np.asarray(features, np.int8)
        outputs = np.zeros((len(features), self.output_size), np.int8)
        for i, example in enumerate(features):
            example = example.reshape(self.input_shape)
            if self.backend == "tflm":
                self._interpreter.set_input(example, 0)
                self._interpreter.invoke()
                outputs[i] = self._interpreter.get_output(0).reshape(-1)
            else:
                self._interpreter.set_tensor(self._input_index, example)
                self._interpreter.invoke()
                outputs[i] = self._interpreter.get_tensor(self._output_index).reshape(-1)
        return outputs


def measure_arena(tflite: bytes) -> int:
    """The smallest tensor arena (bytes, 16-byte steps) with which TFLM allocates and invokes the model."""
    from tflite_micro.python.tflite_micro import runtime

    def fits(size: int) -> bool:
        try:
            with native_stderr_silenced():  # TFLM reports each failed allocation of the search
                interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=size)
                shape = interpreter.get_input_details(0)["shape"]
                interpreter.set_input(np.zeros(shape, np.int8), 0)
                interpreter.invoke()
        except RuntimeError:
            return False
        return True

    low, high = 0, 16 * 1024
    while not fits(high):
        low, high = high, high * 2
        if high > 64 * 1024 * 1024:
            raise ValueError("the model does not allocate in a 64 MB arena")
    while high - low > 16:
        middle = (low + high) // 2 // 16 * 16
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high
