"""Accuracy the way the board computes it: int8 features from the firmware's scaling, the int8 model in TFLM.

The float model is evaluated beside it on the same clips, so the cost of quantization is one subtraction.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kws import config as config_module
from kws.config import Config
from kws.evaluation.runtime import Int8Model
from kws.frontends.dispatch import int8_scaling, to_float
from kws.training.train import MODEL_NAME, QAT_MODEL_NAME


class ModelDir:
    """An exported model folder: model.tflite, the float model, config.toml, model_card.json."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        for name in ("model.tflite", "config.toml"):
            if not (self.path / name).exists():
                raise FileNotFoundError(f"{self.path / name}: missing (is {self.path} a folder written by kws export?)")
        self.config: Config = config_module.load(self.path / "config.toml")
        self.tflite = (self.path / "model.tflite").read_bytes()

    @property
    def float_model_path(self) -> Path:
        """The trained Keras model; a quantization-aware one is model_qat.h5 (see kws.training.train)."""
        qat = self.path / QAT_MODEL_NAME
        return qat if qat.exists() else self.path / MODEL_NAME

    def int8(self, backend: str = "tflm") -> Int8Model:
        return Int8Model(self.tflite, backend)

    def scaling(self, model: Int8Model) -> object:
        """The board's map from its front end's integers to the model's int8 input (kws.frontends.dispatch.int8_scaling)."""
        return int8_scaling(self.config, model.input.scale, model.input.zero_point)


def confusion(labels: tuple[str, ...], targets: np.ndarray, predictions: np.ndarray) -> dict:
    """Counts per (true, predicted) class, per-class and overall accuracy with a 95% Wilson interval."""
    n = len(labels)
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    correct = int(np.trace(matrix))
    total = int(matrix.sum())
    per_class = {label: {"clips": int(matrix[i].sum()), "correct": int(matrix[i, i]),
                         "accuracy": round(float(matrix[i, i] / matrix[i].sum()), 4) if matrix[i].sum() else None,
                         "ci95": wilson_interval(int(matrix[i, i]), int(matrix[i].sum()))}
                 for i, label in enumerate(labels)}
    return {"clips": total, "correct": correct, "accuracy": round(correct / total, 4) if total else None,
            "ci95": wilson_interval(correct, total), "per_class": per_class, "labels": list(labels),
            "confusion": matrix.tolist()}


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of a proportion (sound at small counts and near 0 or 1, unlike p ± 2σ)."""
    if not trials:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def int8_outputs(model_dir: ModelDir, raw: np.ndarray, backend: str = "tflm") -> np.ndarray:
    """int8 model outputs for raw front-end features, through the firmware's scaling."""
    model = model_dir.int8(backend)
    return model.predict(model_dir.scaling(model).apply(raw))


def evaluate(model_dir: ModelDir, raw: np.ndarray, targets: np.ndarray, backend: str = "tflm") -> dict:
    """Accuracy and confusion of the int8 model (and of the float model when it is there)."""
    labels = model_dir.config.labels
    result = {"int8": confusion(labels, targets, int8_outputs(model_dir, raw, backend).argmax(axis=1)),
              "int8_runtime": backend}
    if model_dir.float_model_path.exists():
        from kws.training.export import load_keras

        model = load_keras(model_dir.float_model_path)
        x = to_float(model_dir.config, raw)[..., np.newaxis]
        result["float"] = confusion(labels, targets, model.predict(x, verbose=0, batch_size=256).argmax(axis=1))
        result["int8_minus_float"] = round(result["int8"]["accuracy"] - result["float"]["accuracy"], 4)
    return result


def format_confusion(result: dict) -> str:
    """The confusion matrix as an aligned text table (rows: true class, columns: predicted)."""
    labels = result["labels"]
    width = max(7, *(len(label) + 1 for label in labels))
    lines = [" " * width + "".join(f"{label[:width - 1]:>{width}}" for label in labels)]
    for label, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    return "\n".join(lines)
