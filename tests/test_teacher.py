"""The teacher: its MFCC front end, label mapping, float and int8 runs, and refusal of teachers that do not fit.

No file of ../shared is read: a tiny stand-in teacher with the MLPerf model's input shape [1, 49, 10, 1] is trained on
generated tones and converted to float and int8 .tflite here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kws.config import ConfigError, from_dict
from kws.frontends.teacher_mfcc import FRONTENDS, mlperf_mfcc
from kws.training.teacher import Teacher, TeacherError, soften

# The stand-in's outputs, deliberately not in the config's order (silence, unknown, yes, no).
TEACHER_LABELS = ["no", "_silence_", "yes", "_unknown_"]
TONES_HZ = [0, 2500, 500, 1200]  # one kind of clip per teacher output (0: quiet noise)


def tone_clips(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """int16 clips of a tone at a random level and start, in noise; the class is the tone's index in TONES_HZ."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    clips, classes = [], []
    for i in range(count):
        kind = i % len(TONES_HZ)
        x = rng.normal(0, 0.01, 16000)
        if TONES_HZ[kind]:
            start = rng.integers(0, 6000)
            envelope = (t >= start / 16000) & (t < start / 16000 + 0.5)
            x += envelope * rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * TONES_HZ[kind] * rng.uniform(0.95, 1.05) * t)
        clips.append(np.clip(x * 32767, -32768, 32767).astype(np.int16))
        classes.append(kind)
    return np.stack(clips), np.asarray(classes)


def convert(model: object, representative: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[np.newaxis]] for x in representative[:100])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A float and an int8 stand-in teacher with input [1, 49, 10, 1], trained on tone clips; and one with a wrong
    input shape."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    clips, classes = tone_clips(240, seed=1)
    features = mlperf_mfcc(clips)[..., np.newaxis]
    layers = tf_keras.layers
    model = tf_keras.Sequential([
        layers.Input((49, 10, 1), batch_size=1),
        layers.Conv2D(8, (5, 3), strides=2, activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(len(TEACHER_LABELS), activation="softmax"),
    ])
    model.compile(optimizer=tf_keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(features, classes, epochs=30, batch_size=32, verbose=0)
    out = tmp_path_factory.mktemp("teacher")
    paths = {"float": out / "float.tflite", "int8": out / "int8.tflite", "wrong_shape": out / "wrong.tflite"}
    paths["float"].write_bytes(convert(model, None))
    paths["int8"].write_bytes(convert(model, features))
    wrong = tf_keras.Sequential([layers.Input((49, 40, 1), batch_size=1), layers.Flatten(),
                                 layers.Dense(len(TEACHER_LABELS), activation="softmax")])
    paths["wrong_shape"].write_bytes(convert(wrong, None))
    return paths


def teacher_config(model: Path | str, **teacher: object):
    return from_dict({"keywords": {"words": ["yes", "no"]},
                      "teacher": {"model": str(model), "labels": TEACHER_LABELS, "temperature": 2.0, "batch_size": 16,
                                  **teacher}})


def test_mlperf_mfcc_shapes_and_padding() -> None:
    clips, _ = tone_clips(5, seed=2)
    features = mlperf_mfcc(clips)
    assert features.shape == (5, 49, 10) and features.dtype == np.float32
    assert FRONTENDS["mlperf_mfcc"].shape == features.shape[1:]
    short = mlperf_mfcc(clips[:, :12000])  # zero-padded at the end to 16,000 samples
    np.testing.assert_allclose(short, mlperf_mfcc(np.pad(clips[:, :12000], ((0, 0), (0, 4000)))), atol=1e-5)
    assert np.isfinite(mlperf_mfcc(np.zeros((1, 16000), np.int16))).all()  # digital silence: no division by zero


def test_mlperf_mfcc_normalizes_each_clip_by_its_signed_maximum() -> None:
    clips, _ = tone_clips(4, seed=3)
    loud = clips.astype(np.float32) * np.asarray([[1.0], [0.25], [0.05], [0.6]])
    batch = mlperf_mfcc(loud)
    np.testing.assert_allclose(batch, mlperf_mfcc(clips), rtol=1e-4, atol=1e-3)  # the level does not matter
    for i in range(len(clips)):  # nor which clips share the batch
        np.testing.assert_allclose(batch[i], mlperf_mfcc(loud[i:i + 1])[0], rtol=1e-4, atol=1e-4)
    # the *signed* maximum, not the absolute one: a clip and its negation have the same STFT magnitudes, so only the
    # scale differs, which the log's 1e-6 floor shows in the quiet part. This clip's positive peak is 1000 times
    # smaller than its negative one.
    x = np.random.default_rng(6).normal(0, 1e-9, 16000).astype(np.float32)
    x[1000:5000] = np.sin(np.arange(4000) / 3.0)
    skewed = np.where(x > 0, 0.001 * x, x)
    quiet = slice(20, 49)  # frames after the sine
    assert not np.allclose(mlperf_mfcc(skewed[np.newaxis])[:, quiet], mlperf_mfcc(-skewed[np.newaxis])[:, quiet],
                           atol=1.0)
    np.testing.assert_allclose(mlperf_mfcc(skewed[np.newaxis]), mlperf_mfcc(1000 * skewed[np.newaxis]), rtol=1e-4,
                               atol=1e-3)


def test_teacher_outputs_in_the_configs_order(stand_in: dict[str, Path]) -> None:
    config = teacher_config(stand_in["float"])
    teacher = Teacher(config)
    clips, classes = tone_clips(40, seed=4)
    probabilities = teacher.probabilities(list(clips))
    assert probabilities.shape == (40, len(config.labels)) and config.labels == ("silence", "unknown", "yes", "no")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    mapped = {"_silence_": "silence", "_unknown_": "unknown"}
    expected = np.asarray([config.labels.index(mapped.get(TEACHER_LABELS[c], TEACHER_LABELS[c])) for c in classes])
    assert np.mean(probabilities.argmax(axis=1) == expected) >= 0.9  # the tones are learnt, and land in their column
    soft = teacher.soft_targets(iter(clips))  # a stream, in batches of 16, at temperature 2
    np.testing.assert_allclose(soft, soften(probabilities, 2.0), atol=1e-5)
    assert np.all(soft.max(axis=1) <= probabilities.max(axis=1) + 1e-6)  # softer


def test_soften() -> None:
    p = np.asarray([[0.7, 0.2, 0.1, 0.0]], np.float32)
    np.testing.assert_allclose(soften(p, 1.0), [[0.7, 0.2, 0.1, 1e-6]], atol=1e-5)
    warm = soften(p, 4.0)
    assert warm.argmax() == 0 and warm.max() < 0.7 and warm.sum() == pytest.approx(1.0)


def test_float_and_int8_teacher_agree(stand_in: dict[str, Path]) -> None:
    clips, _ = tone_clips(80, seed=5)
    float_teacher, int8_teacher = Teacher(teacher_config(stand_in["float"])), Teacher(teacher_config(stand_in["int8"]))
    assert int8_teacher.input_dtype == np.int8
    agree = float_teacher.probabilities(clips).argmax(axis=1) == int8_teacher.probabilities(clips).argmax(axis=1)
    assert np.mean(agree) >= 0.95


@pytest.mark.parametrize(("teacher", "message"), [
    ({"labels": ["no", "_silence_", "yes"]}, "the config's class 'unknown' is no output of the teacher"),
    ({"labels": ["no", "_silence_", "yes", "_unknown_", "maybe"]}, "the teacher's output 'maybe' is no class"),
    ({"labels": ["no", "silence", "yes", "_silence_"]}, "a class is named twice"),
    ({"frontend": "mel_db"}, "unknown teacher front end (known: mlperf_mfcc)"),
    ({"temperature": 0}, "'teacher.temperature' = 0.0"),
    ({"alpha": 1.5}, "'teacher.alpha' = 1.5"),
    ({"alpha_when_wrong": -0.1}, "'teacher.alpha_when_wrong' = -0.1"),
])
def test_config_refuses_a_teacher_that_does_not_fit(teacher: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as error:
        teacher_config("teacher.tflite", **teacher)
    assert message in str(error.value)


def test_refuses_bad_teacher_files(stand_in: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="input shape \\[1, 49, 40, 1\\] does not take the 'mlperf_mfcc'"):
        Teacher(teacher_config(stand_in["wrong_shape"]))
    with pytest.raises(TeacherError, match="no such file"):
        Teacher(teacher_config(tmp_path / "missing.tflite"))
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    with pytest.raises(TeacherError, match="not a .tflite model"):
        Teacher(teacher_config(tmp_path / "junk.tflite"))
    assert from_dict({}).teacher.enabled is False  # no [teacher]: nothing changes


DISTIL_CONFIG = """\
name = "distil"
[keywords]
words = ["yes", "no"]
unknown_words = ["up", "down", "cat", "tree"]
[augment]
copies = 1
snr_db = [5.0, 20.0]
reverb_probability = 0.5
time_masks = 1
[model]
architecture = "tiny_conv"
filters = 4
[training]
epochs = 1
batch_size = 32
restore_best = false
[teacher]
model = "{model}"
labels = ["no", "_silence_", "yes", "_unknown_"]
temperature = 2.0
alpha = 0.7
batch_size = 50
"""


@pytest.fixture(scope="module")
def distil_config(stand_in: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("distil") / "distil.toml"
    path.write_text(DISTIL_CONFIG.format(model=stand_in["float"]))
    return path


def test_soft_targets_come_from_each_augmented_copy_and_are_cached(distil_config: Path, synth_data: Path,
                                                                   tmp_path: Path) -> None:
    from kws import config as config_module
    from kws.data import augment
    from kws.data import dataset as data
    from kws.data.features import features

    config = config_module.load(distil_config)
    teacher = Teacher(config)
    cache = tmp_path / "cache"
    plain = features(config, [synth_data], cache_dir=cache)  # a cache made before the teacher came
    assert not plain.soft
    labelled = features(config, [synth_data], cache_dir=cache, teacher=teacher)
    soft = labelled.soft["train"]
    assert soft.shape == (len(plain.raw["train"]), len(config.labels)) and "validation" not in labelled.soft
    np.testing.assert_array_equal(labelled.raw["train"], plain.raw["train"])
    # the same audio drawn again (the seeded draw of kws.data.features.features): every row is its own example's teacher output
    dataset = data.load(config, [synth_data])
    rng = np.random.default_rng(config.training.seed + 1)
    originals = dataset.splits["train"].audio
    copies = [augment.augment(config, clip, dataset.noise, rng) for clip in originals]
    np.testing.assert_allclose(soft, teacher.soft_targets(originals + copies), atol=1e-6)
    assert not np.allclose(soft[:len(originals)], soft[len(originals):], atol=1e-3)  # a copy is not its clip
    fresh = features(config, [synth_data], cache_dir=tmp_path / "fresh", teacher=teacher)  # both at once
    np.testing.assert_array_equal(fresh.raw["train"], plain.raw["train"])
    np.testing.assert_allclose(fresh.soft["train"], soft, atol=1e-6)
    assert len(list(cache.glob(f"soft-*-{teacher.md5[:12]}-T2-*.npz"))) == 1
    again = features(config, [synth_data], cache_dir=cache, teacher=teacher)  # from the cache: no teacher run
    teacher.soft_targets = None  # type: ignore[assignment]
    np.testing.assert_array_equal(again.soft["train"], soft)


def test_unlabeled_speech_is_cut_into_clips_and_labelled_by_the_teacher(distil_config: Path, synth_data: Path,
                                                                        tmp_path: Path) -> None:
    from kws import config as config_module
    from kws.data import audio
    from kws.data import dataset as data
    from kws.data.features import features

    config = config_module.load(distil_config)
    folder = tmp_path / "speech" / "any"
    folder.mkdir(parents=True)
    clips, _ = tone_clips(4, seed=7)
    long = np.concatenate([clips[0], clips[1], clips[2], clips[3][:9000]])  # 3 windows and a part over half a clip
    audio.write_wav(folder / "long.wav", long, 16000)
    audio.write_wav(folder / "short.wav", clips[0][:8000], 16000)
    # a validation speaker's clip is held back: calibrate and report play it as unseen non-keyword speech
    assert data.speaker_split("heard", config.split) == "validation"
    audio.write_wav(folder / "heard_nohash_0.wav", clips[1], 16000)
    split = data.load_unlabeled(config, [tmp_path / "speech"], [])
    assert len(split.audio) == 5 and set(split.targets) == {-1}
    assert all(data.speaker_of(path) != "heard" for path in split.paths)
    np.testing.assert_array_equal(split.audio[1], clips[1])
    teacher = Teacher(config)
    result = features(config, [synth_data], cache_dir=tmp_path / "cache", unlabeled=[tmp_path / "speech"],
                      teacher=teacher)
    assert len(result.raw["unlabeled"]) == 5 * (1 + config.augment.copies) == len(result.soft["unlabeled"])
    assert set(result.targets["unlabeled"]) == {-1} and result.summary["unlabeled"]["clips"] == 5
    plain = features(config, [synth_data], cache_dir=tmp_path / "cache")  # the other splits do not change
    np.testing.assert_array_equal(result.raw["train"], plain.raw["train"])


def test_distillation_loss() -> None:
    import tensorflow as tf

    from kws.training.train import distillation_loss, hard_accuracy

    student = np.asarray([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    soft = soften(student, 3.0)
    hard = np.asarray([[0.0], [-1.0]], np.float32)  # the second row has no class: soft loss only
    loss = distillation_loss(3.0, 0.8)(tf.constant(np.concatenate([hard, soft], axis=1)), tf.constant(student))
    np.testing.assert_allclose(loss.numpy(), [0.2 * -np.log(0.7), 0.0], atol=1e-5)  # KL of equal distributions: 0
    other = np.asarray([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]], np.float32)
    worse = distillation_loss(3.0, 1.0)(tf.constant(np.concatenate([hard, soften(other, 3.0)], axis=1)),
                                        tf.constant(student)).numpy()
    assert np.all(worse > 0)
    # Where the teacher's top class is not the label (row 0: label 0, teacher says 1), alpha_when_wrong weighs it;
    # where it agrees, or there is no label (row 1), alpha does.
    packed = tf.constant(np.concatenate([hard, soften(other, 3.0)], axis=1))
    kl = distillation_loss(3.0, 1.0)(packed, tf.constant(student)).numpy()
    ce = distillation_loss(3.0, 0.0)(packed, tf.constant(student)).numpy()
    trusting_less = distillation_loss(3.0, 0.8, alpha_when_wrong=0.25)(packed, tf.constant(student)).numpy()
    np.testing.assert_allclose(trusting_less, [0.25 * kl[0] + 0.75 * ce[0], 0.8 * kl[1]], rtol=1e-5)
    metric = hard_accuracy()
    metric.update_state(tf.constant(np.concatenate([hard, soft], axis=1)), tf.constant(student))
    assert float(metric.result()) == 1.0  # only the labelled row counts
    # Over batches it counts rows, not batches: 3 rows (2 right) and then 1 row (right) make 3 of 4, not the
    # unweighted mean of 2/3 and 1.
    metric.reset_state()
    three = np.asarray([[0.0], [1.0], [1.0]], np.float32)
    metric.update_state(tf.constant(np.concatenate([three, np.eye(3, dtype=np.float32)], axis=1)),
                        tf.constant(np.eye(3, dtype=np.float32)))
    metric.update_state(tf.constant(np.asarray([[2.0, 0, 0, 1]], np.float32)), tf.constant([[0.1, 0.1, 0.8]]))
    assert float(metric.result()) == 0.75


def test_train_distils_with_the_teacher(distil_config: Path, synth_data: Path, tmp_path: Path) -> None:
    import json

    from kws import cli

    code = cli.main(["train", "--config", str(distil_config), "--data", str(synth_data), "--out", str(tmp_path / "run"),
                     "--unlabeled", str(synth_data / "cat"), "--no-cache"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["data"]["unlabeled"]["clips"] > 0 and 0.0 <= summary["best"]["val_accuracy"] <= 1.0
    teacher = summary["teacher"]
    assert teacher["temperature"] == 2.0 and teacher["alpha"] == 0.7 and len(teacher["md5"]) == 32
    assert 0.0 <= teacher["agrees_with_hard_labels"] <= 1.0 and sum(teacher["unlabeled_top_classes"].values()) > 0
    import tf_keras

    tf_keras.models.load_model(tmp_path / "run" / "model.keras")  # loads like any model (kws export reads it)
    # The card names the teacher and scores it on the clips `kws eval` scores the student on.
    import subprocess
    import sys

    from kws import config as config_module
    from kws.common.paths import REPO_ROOT
    from kws.data import dataset as data
    from kws.evaluation.evaluate import ModelDir
    from kws.training.teacher import md5

    model_dir = tmp_path / "model"
    made_teacher = "python3 scripts/teacher_from_model.py runs/reference/model.keras teacher.tflite"
    assert cli.main(["export", "--config", str(distil_config), "--model", str(tmp_path / "run" / "model.keras"),
                     "--data", str(synth_data), "--out", str(model_dir), "--prepared-by", made_teacher]) == 0
    recipe = json.loads((model_dir / "model_card.json").read_text())["recipe"]
    assert recipe[0] == made_teacher and recipe[-1].startswith("kws export")
    teacher_file = Path(config_module.load(distil_config).teacher.model)
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "teacher_accuracy.py"), "--model", str(teacher_file),
                    "--data", str(synth_data), "--card", str(model_dir), "--split", "validation"], check=True)
    card = json.loads((model_dir / "model_card.json").read_text())["teacher"]
    clips = data.select_clips(ModelDir(str(model_dir)).config, [str(synth_data)], "validation")
    assert card["md5"] == md5(teacher_file) and not Path(card["file"]).is_absolute()
    assert card["validation"]["clips"] == len(clips.targets) > 0 and 0.0 <= card["validation"]["accuracy"] <= 1.0
    assert card["temperature"] == 2.0 and card["alpha"] == 0.7


def test_unlabeled_speech_needs_a_teacher(tiny_config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from kws import cli

    code = cli.main(["train", "--config", str(tiny_config_path), "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                     "--unlabeled", str(tmp_path)])
    assert code == 2 and "--unlabeled needs a [teacher]" in capsys.readouterr().err
