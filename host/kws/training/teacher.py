"""A pretrained teacher model that labels training audio with soft targets (knowledge distillation).

The teacher is a .tflite with its own front end, which need not be the board's: `kws.frontends.teacher_mfcc.FRONTENDS`
maps a front end's name (`teacher.frontend` in the config) to a function from a batch of clips to the teacher's input
features.

Everything runs in batches of `teacher.batch_size` clips, so memory is bounded by the batch, not the data set.
TensorFlow and the interpreter are imported only when a teacher runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from kws.common.quiet import native_stderr_silenced
from kws.config import TEACHER_LABEL_ALIASES, Config, ConfigError
from kws.frontends.teacher_mfcc import FRONTENDS


class TeacherError(ConfigError):
    """A teacher that cannot label this config's data; the message names the key and why."""


def md5(path: str | Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


class Teacher:
    """The config's teacher: loads and checks the .tflite, and gives its class probabilities in the config's label
    order, optionally softened by the temperature."""

    def __init__(self, config: Config) -> None:
        settings = config.teacher
        if not settings.enabled:
            raise TeacherError("no [teacher] model in the config")
        path = Path(settings.model)
        self.path = path if path.is_absolute() else config.resolve(settings.model)
        if not self.path.is_file():
            raise TeacherError(f"'teacher.model' = {settings.model!r}: no such file ({self.path})")
        if settings.frontend not in FRONTENDS:
            raise TeacherError(f"'teacher.frontend' = {settings.frontend!r}: unknown teacher front end "
                               f"(known: {', '.join(FRONTENDS)})")
        self.frontend = FRONTENDS[settings.frontend]
        if config.audio.sample_rate != self.frontend.sample_rate:
            raise TeacherError(f"'teacher.frontend' = {settings.frontend!r}: needs {self.frontend.sample_rate} Hz "
                               f"audio, the config has audio.sample_rate = {config.audio.sample_rate}")
        self.temperature = settings.temperature
        self.batch_size = settings.batch_size
        self.md5 = md5(self.path)
        from ai_edge_litert import interpreter as litert

        content = self.path.read_bytes()
        try:
            with native_stderr_silenced():
                self._interpreter = litert.Interpreter(model_content=content)
                if self._interpreter.get_input_details()[0]["dtype"] == np.int8:
                    # int8 with the reference kernels, as the board would; float keeps the default (XNNPACK) kernels,
                    # with which the MLPerf teacher's published check values were measured (93.60%, not 93.51%)
                    self._interpreter = litert.Interpreter(
                        model_content=content,
                        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        except ValueError as error:
            raise TeacherError(f"'teacher.model' = {settings.model!r}: not a .tflite model ({error})") from None
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise TeacherError(f"'teacher.model' = {settings.model!r}: needs one input and one output, has "
                               f"{len(inputs)} and {len(outputs)}")
        expected = (1, *self.frontend.shape)
        shape = tuple(int(d) for d in inputs[0]["shape"])
        if shape not in (expected, (*expected, 1)):
            raise TeacherError(f"'teacher.model' = {settings.model!r}: input shape {list(shape)} does not take the "
                               f"'{settings.frontend}' features {list(expected)} (or {list((*expected, 1))})")
        self.input_shape = shape
        self.input_dtype = inputs[0]["dtype"]
        self.input_quantization = inputs[0]["quantization"]
        self.output_quantization = outputs[0]["quantization"]
        self._input_index, self._output_index = inputs[0]["index"], outputs[0]["index"]
        outputs_count = int(outputs[0]["shape"][-1])
        if outputs_count != len(settings.labels):
            raise TeacherError(f"'teacher.labels' = {list(settings.labels)}: the teacher has {outputs_count} outputs, "
                               f"the config names {len(settings.labels)}")
        mapped = [TEACHER_LABEL_ALIASES.get(label, label) for label in settings.labels]
        # column j of the result is the teacher's output order[j]: config order
        self.order = np.asarray([mapped.index(label) for label in config.labels])
        self._batch = 0

    def features(self, clips: np.ndarray) -> np.ndarray:
        """The teacher's input features of a batch of clips, (n, *input shape without the batch)."""
        return self.frontend.compute(clips).reshape(len(clips), *self.input_shape[1:])

    def _run(self, features: np.ndarray) -> np.ndarray:
        if self._batch != len(features):
            self._interpreter.resize_tensor_input(self._input_index, [len(features), *self.input_shape[1:]])
            with native_stderr_silenced():
                self._interpreter.allocate_tensors()
            self._batch = len(features)
        if self.input_dtype == np.int8:
            scale, zero_point = self.input_quantization
            features = np.clip(np.trunc(features / scale + zero_point), -128, 127).astype(np.int8)
        self._interpreter.set_tensor(self._input_index, features.astype(self.input_dtype))
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output_index)
        if out.dtype != np.float32:
            scale, zero_point = self.output_quantization
            out = (out.astype(np.float32) - zero_point) * scale
        return out[:, self.order]

    def probabilities(self, clips: Iterable[np.ndarray] | np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """Class probabilities (n, classes) in the config's label order, at `temperature` (1: the teacher's own)."""
        return np.concatenate([batch for batch in self.iter_probabilities(clips, temperature)] or
                              [np.zeros((0, len(self.order)), np.float32)])

    def iter_probabilities(self, clips: Iterable[np.ndarray], temperature: float = 1.0) -> Iterator[np.ndarray]:
        """`probabilities` one batch at a time, for a stream of clips."""
        for batch in batched(clips, self.batch_size):
            yield soften(self._run(self.features(batch)), temperature)

    def soft_targets(self, clips: Iterable[np.ndarray]) -> np.ndarray:
        """The distillation targets: the teacher's probabilities at the config's temperature."""
        return self.probabilities(clips, self.temperature)


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the distribution a softmax layer gives at temperature T (its logits are log p up to a
    constant). An int8 teacher's zero probabilities are floored at 1e-6 first."""
    logits = np.log(np.maximum(probabilities.astype(np.float64), 1e-6)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def batched(clips: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Stacks a stream of equal-length clips into arrays of at most `size` clips."""
    batch: list[np.ndarray] = []
    for clip in clips:
        batch.append(clip)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)
