"""Training: float training (early stopping on validation accuracy, or every epoch with validation kept held out),
then optional quantization-aware tuning.

Writes into the run folder: `model.keras` (best float model) or `model_qat.h5` (the QAT model), `history_*.csv`
(per-epoch metrics), `config.toml` (the config used) and `train.json` (data summary, timings, best epoch).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.data import Features
from kws.progress import Progress

MODEL_NAME = "model.keras"
QAT_MODEL_NAME = "model_qat.h5"


def set_seeds(seed: int) -> None:
    """Deterministic weights and shuffles for the same config (op-level determinism costs little on CPU)."""
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def spec_augment(config: Config, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment-style masking (Park et al. 2019): zero random bands of time slices and of channels."""
    aug = config.augment
    if not (aug.time_masks or aug.frequency_masks):
        return batch
    batch = batch.copy()
    slices, channels = batch.shape[1:3]
    for example in batch:
        for _ in range(aug.time_masks):
            width = rng.integers(0, aug.time_mask_slices + 1)
            start = rng.integers(0, slices - width + 1)
            example[start:start + width] = 0
        for _ in range(aug.frequency_masks):
            width = rng.integers(0, aug.frequency_mask_channels + 1)
            start = rng.integers(0, channels - width + 1)
            example[:, start:start + width] = 0
    return batch


def frequency_warp(config: Config, batch: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Each example's spectrum with every frequency scaled by its factor (VTLP on the filterbank output).

    Channel k of the microfrontend is centred near mel point k + 1 of num_channels + 2 equally spaced between the
    band edges (mel = 1127 ln(1 + f/700)); output channel k takes the value at frequency f_k / factor, read by linear
    interpolation between neighbouring channels and held at the edges.
    """
    fe = config.frontend
    channels = batch.shape[2]

    def mel(f: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log1p(f / 700.0)

    low, high = mel(np.float64(fe.lower_band_hz)), mel(np.float64(fe.upper_band_hz))
    step = (high - low) / (channels + 1)
    centres_hz = 700.0 * np.expm1((low + step * np.arange(1, channels + 1)) / 1127.0)
    source = (mel(centres_hz[np.newaxis, :] / factors[:, np.newaxis]) - low) / step - 1  # fractional channel index
    source = np.clip(source, 0, channels - 1)
    below = np.floor(source).astype(np.int64)
    above = np.minimum(below + 1, channels - 1)
    weight = (source - below)[:, np.newaxis, :, np.newaxis].astype(batch.dtype)
    rows = np.arange(len(batch))[:, np.newaxis]
    return batch[rows, :, below].transpose(0, 2, 1, 3) * (1 - weight) + batch[rows, :, above].transpose(0, 2, 1, 3) * weight


def train(config: Config, data: Features, run_dir: Path, verbose: bool = True, command: str | None = None) -> Path:
    """Trains the config's model on the features; returns the path of the saved model.

    `command`, the command line that ran the training, is kept in train.json so that export can put the whole
    recipe in the model card.
    """
    import tf_keras

    from kws.models import build

    set_seeds(config.training.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.source is not None:
        shutil.copyfile(config.source, run_dir / "config.toml")
    x_train, y_train = data.float("train"), data.targets["train"]
    x_val, y_val = data.float("validation"), data.targets["validation"]
    if not len(x_val):
        raise ValueError("the data has no validation clips: add speakers or a val.csv")
    model = build(config)
    started = time.monotonic()
    best = _fit(config, model, x_train, y_train, x_val, y_val, run_dir, config.training.epochs,
                config.training.learning_rate, "float", verbose)
    if config.training.qat:
        import tensorflow_model_optimization as tfmot

        model = tfmot.quantization.keras.quantize_model(model)
        best = _fit(config, model, x_train, y_train, x_val, y_val, run_dir, config.training.qat_epochs,
                    config.training.learning_rate / 10, "qat", verbose)
    # tfmot's quantization wrappers do not round-trip through the .keras format (their variables are renamed on
    # loading), only through HDF5; kws.export.load_keras reloads either inside tfmot's quantize_scope.
    model_path = run_dir / (QAT_MODEL_NAME if config.training.qat else MODEL_NAME)
    model.save(model_path)
    summary = {"command": command, "data": data.summary, "best": best, "seconds": round(time.monotonic() - started, 1),
               "parameters": int(model.count_params()), "qat": config.training.qat,
               "tf_keras": tf_keras.__version__}
    (run_dir / "train.json").write_text(json.dumps(summary, indent=2))
    return model_path


def _fit(config: Config, model: object, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
         y_val: np.ndarray, run_dir: Path, epochs: int, learning_rate: float, phase: str, verbose: bool) -> dict:
    import tf_keras

    steps = int(np.ceil(len(x_train) / config.training.batch_size)) * epochs
    schedule = tf_keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps), alpha=0.05)
    average = config.training.weight_average
    optimizer = tf_keras.optimizers.Adam(schedule, use_ema=average > 0, ema_momentum=average or 0.99)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(config.training.seed + 2)
    batch_size = config.training.batch_size

    def batches():  # a fresh shuffle and fresh SpecAugment masks every epoch
        while True:
            order = rng.permutation(len(x_train))
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                batch = x_train[index]
                if config.augment.frequency_warp:
                    warp = config.augment.frequency_warp
                    batch = frequency_warp(config, batch, rng.uniform(1 - warp, 1 + warp, len(batch)))
                yield spec_augment(config, batch, rng), y_train[index]

    progress = Progress(epochs, f"training {phase}", unit="epochs")
    restore_best = config.training.restore_best
    callbacks = [
        tf_keras.callbacks.CSVLogger(str(run_dir / f"history_{phase}.csv")),
        tf_keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: _report(progress, epoch, logs, verbose)),
    ]
    if restore_best:
        callbacks += [
            tf_keras.callbacks.ModelCheckpoint(str(run_dir / "best.weights.h5"), monitor="val_accuracy",
                                               save_best_only=True, save_weights_only=True),
            tf_keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=config.training.patience)]
    history = model.fit(batches(), steps_per_epoch=int(np.ceil(len(x_train) / batch_size)), epochs=epochs,
                        validation_data=(x_val, y_val), callbacks=callbacks, verbose=0)
    progress.close()
    if restore_best:
        model.load_weights(run_dir / "best.weights.h5")
        (run_dir / "best.weights.h5").unlink()
    accuracies = history.history["val_accuracy"]
    if restore_best:
        kept = int(np.argmax(accuracies))
        accuracy = accuracies[kept]
    else:  # the last epoch's weights, or their average, which no epoch's validation pass has seen
        kept = len(accuracies) - 1
        accuracy = model.evaluate(x_val, y_val, batch_size=256, verbose=0)[1]
    return {"phase": phase, "epoch": kept + 1, "epochs_run": len(accuracies), "val_accuracy": round(float(accuracy), 4)}


def _report(progress: Progress, epoch: int, logs: dict, verbose: bool) -> None:
    progress.update()
    if verbose:
        print(f"epoch {epoch + 1}: loss {logs['loss']:.3f} accuracy {logs['accuracy']:.3f} "
              f"val_loss {logs['val_loss']:.3f} val_accuracy {logs['val_accuracy']:.3f}", file=sys.stderr)
