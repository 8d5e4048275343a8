"""A pretrained backbone: the MLPerf Tiny reference DS-CNN rebuilt in tf_keras from its .tflite, optionally narrowed
by least-squares channel pruning, as the starting point of training (`model.backbone` in the config).

The reference (mlcommons/tiny, trained on ~2,600 Speech Commands speakers) is a 10x4 convolution at stride 2x2, four
depthwise-separable blocks of 64 channels, average pooling and a dense layer. Its batch normalisation is folded into
the convolutions' weights and biases, and its "float" file keeps them as int8 with per-channel scales (dynamic-range
quantization): rebuilt here with the dequantized weights, it agrees with the file on the top class of ~99.6% of
clips (the file also quantizes activations on the fly); fine-tuning absorbs the rest.

Pruning (`prune`) keeps, for every layer's output channels, those from which the next linear layer best rebuilds
the full model's pre-activations (greedy removal under least squares), then refits that next layer by least squares
on the pruned network's own activations, layer by layer from the input. Slicing by filter norm instead leaves a
network near chance before fine-tuning; least squares keeps most of the accuracy (../shared/notes).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.config import TEACHER_LABEL_ALIASES, Config, ConfigError

if typing.TYPE_CHECKING:
    import tf_keras

# The reference's output order (MLPerf's), by this project's class names.
REFERENCE_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence", "unknown")
REFERENCE_SHAPE = {"kernel": (10, 4), "stride": (2, 2), "blocks": 4, "filters": 64}
# Time stride 4 halves the cost: the first layer's outputs are the reference's at every other time step.
BACKBONE_STRIDES = ((2, 2), (4, 2))


class BackboneError(ConfigError):
    """A backbone that cannot start this config's model; the message names the key and why."""


@dataclass
class Layers:
    """Float weights of a folded DS-CNN, Keras layouts: first conv (h, w, 1, c) and bias; per block the depthwise
    (3, 3, c, 1) and bias and the pointwise (1, 1, c, c') and bias; the dense (c, classes) and bias."""

    first: tuple[np.ndarray, np.ndarray]
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    dense: tuple[np.ndarray, np.ndarray]


def read_reference(path: Path) -> Layers:
    """The folded weights of the reference .tflite, dequantized, in graph order."""
    from ai_edge_litert import interpreter as litert

    interpreter = litert.Interpreter(
        model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def tensor(index: int) -> np.ndarray:
        values = interpreter.get_tensor(index)
        scales = details[index]["quantization_parameters"]["scales"]
        if values.dtype == np.int8:  # per output channel (axis 0 in TFLite's layouts)
            values = values.astype(np.float32) * scales.reshape(-1, *([1] * (values.ndim - 1)))
        return values.astype(np.float32)

    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]  # noqa: SLF001
    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    dense = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    if not convs or convs[0]["op_name"] != "CONV_2D" or len(convs) % 2 != 1 or len(dense) != 1:
        raise BackboneError(f"'model.backbone' = {str(path)!r}: not a DS-CNN (conv, depthwise+pointwise blocks, dense)")
    first = (tensor(convs[0]["inputs"][1]).transpose(1, 2, 3, 0), tensor(convs[0]["inputs"][2]))
    blocks = []
    for depthwise, pointwise in zip(convs[1::2], convs[2::2], strict=True):
        blocks.append((tensor(depthwise["inputs"][1]).transpose(1, 2, 3, 0), tensor(depthwise["inputs"][2]),
                       tensor(pointwise["inputs"][1]).transpose(1, 2, 3, 0), tensor(pointwise["inputs"][2])))
    weights, bias_index = tensor(dense[0]["inputs"][1]), dense[0]["inputs"][2]
    bias = tensor(bias_index) if bias_index >= 0 else np.zeros(len(weights), np.float32)  # the converter drops zeros
    return Layers(first, blocks, (weights.T, bias))


def folded_ds_cnn(config: Config, layers: Layers) -> tf_keras.Model:
    """The DS-CNN of `layers`' shapes with its weights: convolutions with biases and ReLU (batch norm folded), dropout,
    average pooling over the whole map (AVERAGE_POOL_2D, not MEAN: see kws.training.models.ds_cnn) and a softmax layer."""
    import tf_keras
    from tf_keras import layers as keras_layers

    m = config.model
    inputs = keras_layers.Input((config.num_slices, config.frontend.channels, 1), name="features")
    kernel, bias = layers.first
    x = keras_layers.Conv2D(kernel.shape[3], kernel.shape[:2], strides=m.stride, padding="same", activation="relu",
                            name="conv")(inputs)
    for i, (depthwise, _, pointwise, _) in enumerate(layers.blocks, start=1):
        x = keras_layers.DepthwiseConv2D(depthwise.shape[:2], padding="same", activation="relu",
                                         name=f"depthwise_{i}")(x)
        x = keras_layers.Conv2D(pointwise.shape[3], 1, activation="relu", name=f"pointwise_{i}")(x)
    x = keras_layers.Dropout(m.dropout)(x)
    x = keras_layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = keras_layers.Flatten()(x)
    outputs = keras_layers.Dense(layers.dense[0].shape[1], activation="softmax", name="classifier")(x)
    model = tf_keras.Model(inputs, outputs, name="ds_cnn_backbone")
    model.get_layer("conv").set_weights(list(layers.first))
    for i, (depthwise, depthwise_bias, pointwise, pointwise_bias) in enumerate(layers.blocks, start=1):
        model.get_layer(f"depthwise_{i}").set_weights([depthwise, depthwise_bias])
        model.get_layer(f"pointwise_{i}").set_weights([pointwise, pointwise_bias])
    model.get_layer("classifier").set_weights(list(layers.dense))
    return model


def in_config_order(config: Config, layers: Layers) -> Layers:
    """The dense layer's columns reordered from the reference's classes to the config's; a class the reference
    does not have (a digit, a word of another language) gets a new column, random at the scale of the others."""
    weights, bias = layers.dense
    rng = np.random.default_rng(config.training.seed)
    columns, biases = [], []
    for label in config.labels:
        name = TEACHER_LABEL_ALIASES.get(label, label)
        if name in REFERENCE_LABELS:
            columns.append(weights[:, REFERENCE_LABELS.index(name)])
            biases.append(bias[REFERENCE_LABELS.index(name)])
        else:
            columns.append(rng.standard_normal(len(weights)) * weights.std())
            biases.append(bias.mean())
    return Layers(layers.first, layers.blocks, (np.stack(columns, axis=1).astype(np.float32),
                                                np.asarray(biases, np.float32)))


def check(config: Config) -> Path:
    """The backbone's path, after checking that the config's model and front end are the reference's."""
    m = config.model
    path = config.resolve(m.backbone) if not Path(m.backbone).is_absolute() else Path(m.backbone)
    if not path.is_file():
        raise BackboneError(f"'model.backbone' = {m.backbone!r}: no such file ({path})")
    expected = {"model.architecture": ("ds_cnn", m.architecture), "model.kernel": (REFERENCE_SHAPE["kernel"], m.kernel),
                "model.head": ("average", m.head), "frontend.kind": ("mlperf_mfcc", config.frontend.kind),
                "frontend.channels": (10, config.frontend.channels)}
    for key, (want, have) in expected.items():
        if tuple(np.atleast_1d(want)) != tuple(np.atleast_1d(have)):
            raise BackboneError(f"'{key}' = {have!r}: the backbone (MLPerf Tiny reference DS-CNN) needs {want!r}")
    if tuple(m.stride) not in BACKBONE_STRIDES:
        raise BackboneError(f"'model.stride' = {m.stride!r}: the backbone's first convolution runs at [2, 2] "
                            "(or [4, 2]: every other of its time steps)")
    if not 1 <= m.blocks <= REFERENCE_SHAPE["blocks"]:
        raise BackboneError(f"'model.blocks' = {m.blocks}: the backbone keeps 1..4 of its blocks")
    if not 1 <= m.filters <= REFERENCE_SHAPE["filters"]:
        raise BackboneError(f"'model.filters' = {m.filters}: a pruned backbone keeps 1..64 of its channels")
    return path


def pretrained(config: Config, x_sample: np.ndarray) -> tf_keras.Model:
    """The model training starts from: the reference pruned to `model.filters` channels and its first
    `model.blocks` blocks with `x_sample` (float features, a few thousand training examples) when the config asks
    for less than the reference, its classes in the config's order."""
    layers = read_reference(check(config))
    if config.model.filters < REFERENCE_SHAPE["filters"] or config.model.blocks < REFERENCE_SHAPE["blocks"]:
        layers = prune(config, layers, x_sample, config.model.filters)
    return folded_ds_cnn(config, in_config_order(config, layers))


def prune(config: Config, layers: Layers, x_sample: np.ndarray, channels: int) -> Layers:
    """`layers` with every layer's output narrowed to `channels` and only the config's first `model.blocks` blocks,
    chosen and refitted by least squares (see the module's docstring); the full model's pre-activations on
    `x_sample` (at the config's stride) are the targets, its logits the dense layer's."""
    import tensorflow as tf

    stride = (1, *config.model.stride, 1)
    x = tf.constant(x_sample, tf.float32)

    def first_out(first: tuple[np.ndarray, np.ndarray]) -> tf.Tensor:
        return tf.nn.relu(tf.nn.conv2d(x, first[0], stride, "SAME") + first[1])

    def depthwise_out(h: tf.Tensor, kernel: np.ndarray, bias: np.ndarray) -> tf.Tensor:
        return tf.nn.relu(tf.nn.depthwise_conv2d(h, kernel, (1, 1, 1, 1), "SAME") + bias)

    # the full model's pre-activations of every pointwise layer and its logits: what the pruned one must rebuild
    targets, h = [], first_out(layers.first)
    for depthwise, depthwise_bias, pointwise, pointwise_bias in layers.blocks:
        d = depthwise_out(h, depthwise, depthwise_bias)
        z = _flat(d) @ pointwise[0, 0] + pointwise_bias
        targets.append(z)
        h = tf.nn.relu(tf.reshape(tf.cast(z, tf.float32), (*d.shape[:3], -1)))
    targets.append(tf.reduce_mean(h, axis=(1, 2)).numpy() @ layers.dense[0] + layers.dense[1])

    # layer by layer: the pruned network's activations so far, the channels the next layer rebuilds its target from
    # best, and that layer refitted on them; each layer's outputs are sliced once the next layer has chosen
    first_kernel, first_bias = layers.first
    h = first_out(layers.first)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, (depthwise, depthwise_bias, _, _) in enumerate(layers.blocks[:config.model.blocks]):
        d = _flat(depthwise_out(h, depthwise, depthwise_bias))
        kept = _choose(d, targets[i], channels)
        if i == 0:
            first_kernel, first_bias = first_kernel[..., kept], first_bias[kept]
        else:  # the previous pointwise layer's outputs
            weights, bias = blocks[-1][2], blocks[-1][3]
            blocks[-1] = (*blocks[-1][:2], weights[..., kept], bias[kept])
        weights, bias = _least_squares(d[:, kept], targets[i])
        blocks.append((depthwise[:, :, kept], depthwise_bias[kept], weights.reshape(1, 1, *weights.shape), bias))
        h = tf.nn.relu(tf.reshape(tf.cast(d[:, kept] @ weights + bias, tf.float32), (*h.shape[:3], -1)))
    pooled = tf.reduce_mean(h, axis=(1, 2)).numpy()
    kept = _choose(pooled, targets[-1], channels)
    blocks[-1] = (*blocks[-1][:2], blocks[-1][2][..., kept], blocks[-1][3][kept])
    dense = _least_squares(pooled[:, kept], targets[-1])
    return Layers((first_kernel, first_bias), blocks, dense)


def _flat(activations: object) -> np.ndarray:
    """(examples, time, frequency, channels) -> (rows, channels) float64."""
    values = np.asarray(activations, np.float64)
    return values.reshape(-1, values.shape[-1])


def _least_squares(a: np.ndarray, z: np.ndarray, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias minimising |a W + b - z|^2 (a little ridge keeps dead channels harmless), as float32."""
    augmented = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    gram = augmented.T @ augmented
    gram += ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    solution = np.linalg.solve(gram, augmented.T @ np.asarray(z, np.float64))
    return solution[:-1].astype(np.float32), solution[-1].astype(np.float32)


def _choose(a: np.ndarray, z: np.ndarray, channels: int, ridge: float = 1e-6) -> np.ndarray:
    """The `channels` columns of `a` from which a linear layer (with bias) best rebuilds `z`: greedy removal of the
    column whose loss raises the least-squares residual least, on the Gram matrices (sorted indices)."""
    augmented = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    gram = augmented.T @ augmented
    gram += ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    cross = augmented.T @ np.asarray(z, np.float64)
    bias = len(gram) - 1
    kept = list(range(a.shape[1]))
    while len(kept) > channels:
        best, best_gain = None, -np.inf
        for candidate in kept:
            rows = [c for c in kept if c != candidate] + [bias]
            gain = np.sum(cross[rows] * np.linalg.solve(gram[np.ix_(rows, rows)], cross[rows]))  # explained energy
            if gain > best_gain:
                best, best_gain = candidate, gain
        kept.remove(best)
    return np.asarray(kept)
