"""The pretrained backbone: a folded DS-CNN read back from a dynamic-range-quantized .tflite, and least-squares
pruning; and the class weights that keep rare keywords from drowning. A small random DS-CNN stands in for the MLPerf
reference, so nothing here needs ../shared."""

from __future__ import annotations

import numpy as np
import pytest

from kws.config import from_dict
from kws.training import backbone
from kws.training.train import class_weights

SECTIONS = {"frontend": {"kind": "mlperf_mfcc", "channels": 10},
            "model": {"architecture": "ds_cnn", "kernel": [10, 4], "stride": [2, 2], "blocks": 4, "head": "average",
                      "dropout": 0.0},
            "keywords": {"words": ["yes", "no"]}}
CONFIG = from_dict(SECTIONS)


def _config(**overrides: dict) -> object:
    return from_dict({name: {**SECTIONS.get(name, {}), **overrides.get(name, {})}
                      for name in {*SECTIONS, *overrides}})


def _random_layers(channels: int, classes: int, seed: int = 0) -> backbone.Layers:
    rng = np.random.default_rng(seed)

    def scaled(*shape: int) -> np.ndarray:
        fan_in = np.prod(shape[:-1]) if len(shape) > 1 else 1
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    blocks = [(scaled(3, 3, channels, 1) / 3, scaled(channels) * 0.1, scaled(1, 1, channels, channels),
               scaled(channels) * 0.1) for _ in range(4)]
    return backbone.Layers((scaled(10, 4, 1, channels), scaled(channels) * 0.1), blocks,
                           (scaled(channels, classes), np.zeros(classes, np.float32)))


def _features(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 49, 10, 1)).astype(np.float32)


def test_a_dynamic_range_quantized_tflite_reads_back_as_the_model_it_was() -> None:
    import tensorflow as tf

    layers = _random_layers(16, len(CONFIG.labels))
    model = backbone.folded_ds_cnn(CONFIG, layers)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights per channel, as the MLPerf "float" file
    read = backbone.read_reference(_write(converter.convert()))
    for (got, want) in [(read.first[0], layers.first[0]), (read.blocks[2][2], layers.blocks[2][2]),
                        (read.dense[0], layers.dense[0])]:
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= np.abs(want).max() / 127 + 1e-6  # one int8 step of its channel
    x = _features(64)
    rebuilt = backbone.folded_ds_cnn(CONFIG, read).predict(x, verbose=0)
    assert np.mean(rebuilt.argmax(1) == model.predict(x, verbose=0).argmax(1)) > 0.9


def _write(content: bytes) -> object:
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "reference.tflite"
    path.write_bytes(content)
    return path


def _logits(layers: backbone.Layers, x: np.ndarray) -> np.ndarray:
    import tf_keras

    model = backbone.folded_ds_cnn(CONFIG, layers)
    return tf_keras.Model(model.input, model.get_layer("classifier").output).predict(x, verbose=0)


def test_pruning_at_full_width_keeps_the_model_and_narrower_beats_slicing_by_norm() -> None:
    layers = _random_layers(16, len(CONFIG.labels))
    x = _features(200)
    full = backbone.folded_ds_cnn(CONFIG, layers).predict(x, verbose=0)
    same = backbone.prune(CONFIG, layers, x, 16)
    np.testing.assert_allclose(backbone.folded_ds_cnn(CONFIG, same).predict(x, verbose=0), full, atol=1e-3)

    pruned = backbone.prune(CONFIG, layers, x, 8)
    assert pruned.first[0].shape == (10, 4, 1, 8) and pruned.dense[0].shape == (8, len(CONFIG.labels))
    assert all(block[0].shape == (3, 3, 8, 1) and block[2].shape == (1, 1, 8, 8) for block in pruned.blocks)
    reference = _logits(layers, x)
    by_norm = _slice_by_norm(layers, 8)
    error = np.mean((_logits(pruned, x) - reference) ** 2)
    assert error < 0.5 * np.mean((_logits(by_norm, x) - reference) ** 2)


def _slice_by_norm(layers: backbone.Layers, channels: int) -> backbone.Layers:
    """The naive pruning least squares must beat: keep each layer's filters of largest L1 norm."""
    def top(kernel: np.ndarray) -> np.ndarray:
        return np.sort(np.argsort(-np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0))[:channels])

    kept = top(layers.first[0])
    first = (layers.first[0][..., kept], layers.first[1][kept])
    blocks = []
    for depthwise, depthwise_bias, pointwise, pointwise_bias in layers.blocks:
        pointwise = pointwise[:, :, kept, :]
        out = top(pointwise)
        blocks.append((depthwise[:, :, kept], depthwise_bias[kept], pointwise[..., out], pointwise_bias[out]))
        kept = out
    return backbone.Layers(first, blocks, (layers.dense[0][kept], layers.dense[1]))


def test_a_backbone_that_does_not_fit_the_config_is_refused_by_key() -> None:
    path = _write(b"not read: the shapes are checked first")
    for model, key in [({"stride": [3, 2]}, "model.stride"), ({"blocks": 5}, "model.blocks"),
                       ({"kernel": [3, 3]}, "model.kernel"), ({"filters": 65}, "model.filters")]:
        with pytest.raises(backbone.BackboneError, match=key):
            backbone.check(_config(model={"backbone": str(path), **model}))
    # every shape the backbone can start: time stride 4, fewer blocks, classes of its own
    backbone.check(_config(model={"backbone": str(path), "stride": [4, 2], "blocks": 3},
                           keywords={"words": ["yes", "banana"]}))


def test_fewer_blocks_at_time_stride_4_and_new_classes_start_from_the_reference() -> None:
    layers = _random_layers(16, len(backbone.REFERENCE_LABELS))
    config = _config(model={"stride": [4, 2], "blocks": 3}, keywords={"words": ["yes", "banana"]})
    x = _features(200)
    pruned = backbone.prune(config, layers, x, 8)
    assert len(pruned.blocks) == 3 and pruned.dense[0].shape == (8, len(backbone.REFERENCE_LABELS))
    ordered = backbone.in_config_order(config, pruned)
    assert config.labels == ("silence", "unknown", "yes", "banana")
    for column, label in [(0, "silence"), (1, "unknown"), (2, "yes")]:  # the reference's own classes keep theirs
        np.testing.assert_array_equal(ordered.dense[0][:, column],
                                      pruned.dense[0][:, backbone.REFERENCE_LABELS.index(label)])
    assert np.std(ordered.dense[0][:, 3]) > 0  # a new class starts random, not dead
    model = backbone.folded_ds_cnn(config, ordered)
    assert model.get_layer("conv").output.shape[1] == 13  # 49 time steps at stride 4
    assert model.predict(x[:4], verbose=0).shape == (4, 4)
    # the truncated, narrowed network still rebuilds the full one's logits better than chance
    import tf_keras

    logits = tf_keras.Model(model.input, model.get_layer("classifier").output).predict(x, verbose=0)[:, :3]
    full = _logits(layers, x)[:, [backbone.REFERENCE_LABELS.index(label) for label in ("silence", "unknown", "yes")]]
    assert np.corrcoef(logits.ravel(), full.ravel())[0, 1] > 0.3


def test_balanced_classes_weigh_the_same_in_total_and_unlabeled_rows_keep_one() -> None:
    targets = np.array([2] * 90 + [3] * 10 + [-1] * 5)
    plain = class_weights(CONFIG, targets)
    assert np.all(plain == 1)
    weights = class_weights(_config(training={"balance_classes": True}), targets)
    assert weights[:90].sum() == pytest.approx(weights[90:100].sum())
    assert weights[:100].sum() == pytest.approx(100)
    assert np.all(weights[100:] == 1)
    packed = np.concatenate([targets[:, None], np.zeros((len(targets), 4))], axis=1)  # distillation's packing
    np.testing.assert_array_equal(class_weights(_config(training={"balance_classes": True}),
                                                packed), weights)
