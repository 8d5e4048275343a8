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

from kws.common.progress import Progress
from kws.config import Config
from kws.data.features import UNLABELED, Features

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


def distillation_data(config: Config, data: Features, x_train: np.ndarray, y_train: np.ndarray,
                      y_val: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training inputs with the unlabeled examples appended, and targets packed as [hard class (-1: none), soft
    targets...] per row; validation's soft targets are its one-hot classes (its loss is then the hard one's
    shape, and validation accuracy is on the hard classes)."""
    if "train" not in data.soft:
        raise ValueError("[teacher] is set but the features carry no soft targets (pass the teacher to features())")
    soft = data.soft["train"]
    if UNLABELED in data.raw and len(data.raw[UNLABELED]):
        x_train = np.concatenate([x_train, data.float(UNLABELED)])
        y_train = np.concatenate([y_train, data.targets[UNLABELED]])
        soft = np.concatenate([soft, data.soft[UNLABELED]])
    one_hot = np.eye(len(config.labels), dtype=np.float32)[y_val]
    return (x_train, np.concatenate([y_train[:, np.newaxis].astype(np.float32), soft], axis=1),
            np.concatenate([y_val[:, np.newaxis].astype(np.float32), one_hot], axis=1))


def teacher_summary(config: Config, data: Features) -> dict:
    """What the teacher said about the training examples: how often its top class is the hard label, and how many
    keyword examples (clips and augmented copies) it called unknown."""
    from kws.training.teacher import md5

    teacher = config.teacher
    path = Path(teacher.model) if Path(teacher.model).is_absolute() else config.resolve(teacher.model)
    top, hard = data.soft["train"].argmax(axis=1), data.targets["train"]
    keyword = hard >= config.labels.index(config.keywords.words[0])
    summary = {"model": teacher.model, "md5": md5(path), "frontend": teacher.frontend,
               "temperature": teacher.temperature, "alpha": teacher.alpha, "alpha_when_wrong": teacher.alpha_when_wrong,
               "agrees_with_hard_labels": round(float(np.mean(top == hard)), 4),
               "keyword_examples_called_unknown": round(float(np.mean(top[keyword] == config.labels.index("unknown"))), 4)
               if "unknown" in config.labels and keyword.any() else None}
    if UNLABELED in data.soft:
        counts = np.bincount(data.soft[UNLABELED].argmax(axis=1), minlength=len(config.labels))
        summary["unlabeled_top_classes"] = {label: int(n) for label, n in zip(config.labels, counts, strict=True) if n}
    return summary


def distillation_loss(temperature: float, alpha: float, alpha_when_wrong: float | None = None):  # noqa: ANN201
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy(hard class) (Hinton et al. 2015), on
    targets packed as [hard class, soft targets at T...]; a row without a class (-1) has the soft term only. A
    labelled row whose teacher's top class is not its class takes `alpha_when_wrong` instead (None: alpha). The
    student ends in a softmax, so its logits are log p up to a constant: student_T = softmax(log p / T). (A Keras
    loss function.)"""
    import tensorflow as tf

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        hard, soft = tf.cast(y_true[:, 0], tf.int32), y_true[:, 1:]
        log_p = tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0))
        student = tf.nn.log_softmax(log_p / temperature)
        kl = tf.reduce_sum(soft * (tf.math.log(tf.maximum(soft, 1e-7)) - student), axis=1)
        labelled = hard >= 0
        ce = -tf.gather(log_p, tf.maximum(hard, 0), batch_dims=1) * tf.cast(labelled, y_pred.dtype)
        weight = tf.fill(tf.shape(hard), tf.constant(alpha, y_pred.dtype))
        if alpha_when_wrong is not None:
            wrong = labelled & tf.not_equal(tf.argmax(soft, axis=1, output_type=tf.int32), hard)
            weight = tf.where(wrong, tf.constant(alpha_when_wrong, y_pred.dtype), weight)
        return weight * temperature**2 * kl + (1 - weight) * ce

    return loss


def hard_accuracy():  # noqa: ANN201 - a tf_keras Metric, built lazily
    """Accuracy on the hard classes of packed targets ([hard class (-1: none), soft targets...]), counted over all
    labelled rows seen: a function metric would return one value per batch, which Keras averages unweighted, so a
    small last batch counted as much as a full one (0.876 reported for a model scoring 0.832 on 256 + 29 clips)."""
    import tensorflow as tf
    import tf_keras

    class HardAccuracy(tf_keras.metrics.Metric):
        def __init__(self, name: str = "accuracy", **kwargs: object) -> None:  # "accuracy" in the logs, as without
            super().__init__(name=name, **kwargs)                               # a teacher
            self.right = self.add_weight(name="right", initializer="zeros")
            self.labelled = self.add_weight(name="labelled", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):  # noqa: ANN001, ANN201, ARG002
            hard = tf.cast(y_true[:, 0], tf.int64)
            labelled = tf.cast(hard >= 0, tf.float32)
            right = tf.cast(tf.equal(tf.argmax(y_pred, axis=1), hard), tf.float32) * labelled
            self.right.assign_add(tf.reduce_sum(right))
            self.labelled.assign_add(tf.reduce_sum(labelled))

        def result(self):  # noqa: ANN201
            return self.right / tf.maximum(self.labelled, 1.0)

        def reset_state(self) -> None:
            self.right.assign(0.0)
            self.labelled.assign(0.0)

    return HardAccuracy()


def train(config: Config, data: Features, run_dir: Path, verbose: bool = True, command: str | None = None) -> Path:
    """Trains the config's model on the features; returns the path of the saved model.

    `command`, the command line that ran the training, is kept in train.json so that export can put the whole
    recipe in the model card.
    """
    import tf_keras

    from kws.training.models import build

    set_seeds(config.training.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.source is not None:
        shutil.copyfile(config.source, run_dir / "config.toml")
    x_train, y_train = data.float("train"), data.targets["train"]
    x_val, y_val = data.float("validation"), data.targets["validation"]
    if not len(x_val):
        raise ValueError("the data has no validation clips: add speakers or a val.csv")
    if config.teacher.enabled:
        x_train, y_train, y_val = distillation_data(config, data, x_train, y_train, y_val)
    elif UNLABELED in data.raw:
        raise ValueError("unlabeled speech needs a [teacher] in the config to label it")
    if config.model.backbone:
        from kws.training import backbone

        # the pruning's least squares need the model's activations on a few thousand examples, not all of them
        sample = np.random.default_rng(config.training.seed).permutation(len(x_train))[:3000]
        model = backbone.pretrained(config, x_train[np.sort(sample)])
    else:
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
    # loading), only through HDF5; kws.training.export.load_keras reloads either inside tfmot's quantize_scope.
    model_path = run_dir / (QAT_MODEL_NAME if config.training.qat else MODEL_NAME)
    if config.teacher.enabled:  # saved with the plain loss: the distillation loss is a closure no loader knows
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(model_path)
    summary = {"command": command, "data": data.summary, "best": best, "seconds": round(time.monotonic() - started, 1),
               "parameters": int(model.count_params()), "qat": config.training.qat,
               "tf_keras": tf_keras.__version__}
    if config.teacher.enabled:
        summary["teacher"] = teacher_summary(config, data)
    (run_dir / "train.json").write_text(json.dumps(summary, indent=2))
    return model_path


def class_weights(config: Config, targets: np.ndarray) -> np.ndarray:
    """Each training row's loss weight: 1, or with `training.balance_classes` N / (classes * its class's count), so
    every class weighs the same in total. Rows without a class (unlabeled speech, packed targets' -1) keep 1."""
    hard = (targets[:, 0] if targets.ndim == 2 else targets).astype(np.int64)
    weights = np.ones(len(hard), np.float32)
    if config.training.balance_classes:
        labelled = hard >= 0
        counts = np.bincount(hard[labelled], minlength=len(config.labels))
        present = counts > 0
        per_class = np.zeros(len(counts))
        per_class[present] = labelled.sum() / (present.sum() * counts[present])
        weights[labelled] = per_class[hard[labelled]]
    return weights


def _fit(config: Config, model: object, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
         y_val: np.ndarray, run_dir: Path, epochs: int, learning_rate: float, phase: str, verbose: bool) -> dict:
    import tf_keras

    steps = int(np.ceil(len(x_train) / config.training.batch_size)) * epochs
    schedule = tf_keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps), alpha=0.05)
    average = config.training.weight_average
    optimizer = tf_keras.optimizers.Adam(schedule, use_ema=average > 0, ema_momentum=average or 0.99)
    if config.teacher.enabled:
        teacher = config.teacher
        model.compile(optimizer=optimizer, loss=distillation_loss(teacher.temperature, teacher.alpha, teacher.alpha_when_wrong),
                      metrics=[hard_accuracy()])
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(config.training.seed + 2)
    batch_size = config.training.batch_size
    weights = class_weights(config, y_train)

    def batches():  # a fresh shuffle and fresh SpecAugment masks every epoch
        while True:
            order = rng.permutation(len(x_train))
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                batch = x_train[index]
                if config.augment.frequency_warp:
                    warp = config.augment.frequency_warp
                    batch = frequency_warp(config, batch, rng.uniform(1 - warp, 1 + warp, len(batch)))
                yield spec_augment(config, batch, rng), y_train[index], weights[index]

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
