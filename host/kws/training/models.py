"""Model architectures, one readable function each (tf_keras: quantization-aware training needs it).

Every model takes float features of shape (slices, channels, 1) and ends in a softmax over the config's labels.
They are built from ops that TFLM has CMSIS-NN kernels for on Cortex-M4 (CONV_2D, DEPTHWISE_CONV_2D,
AVERAGE_POOL_2D, FULLY_CONNECTED, SOFTMAX, RESHAPE).
"""

from __future__ import annotations

import typing

from kws.config import Config

if typing.TYPE_CHECKING:
    import tf_keras


def tiny_conv(config: Config) -> tf_keras.Model:
    """micro_speech's model: one strided convolution and a classifier (about 16 KB int8 for 4 classes)."""
    from tf_keras import layers

    m = config.model
    inputs = layers.Input((config.num_slices, config.frontend.channels, 1), name="features")
    x = layers.Conv2D(m.filters, m.kernel, strides=m.stride, padding="same", activation="relu")(inputs)
    x = layers.Dropout(m.dropout)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(len(config.labels), activation="softmax")(x)
    return _model(inputs, outputs, "tiny_conv")


def ds_cnn(config: Config) -> tf_keras.Model:
    """Depthwise-separable CNN (Zhang et al. 2017, "Hello Edge"; the MLPerf Tiny KWS reference family).

    A strided first convolution, then `blocks` of depthwise 3x3 + pointwise 1x1, then global average pooling.
    Global pooling is an AveragePooling2D over the whole map (AVERAGE_POOL_2D) rather than GlobalAveragePooling2D,
    which converts to MEAN: on Cortex-M4 MEAN costs 26x more instructions for the same result.
    """
    from tf_keras import layers, regularizers

    m = config.model
    l2 = regularizers.l2(1e-4)
    inputs = layers.Input((config.num_slices, config.frontend.channels, 1), name="features")
    x = layers.Conv2D(m.filters, m.kernel, strides=m.stride, padding="same", use_bias=False,
                      kernel_regularizer=l2)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(m.blocks):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, depthwise_regularizer=l2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(m.filters, 1, use_bias=False, kernel_regularizer=l2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    outputs = _classifier(config, x)
    return _model(inputs, outputs, "ds_cnn")


def cnn(config: Config) -> tf_keras.Model:
    """Two strided standard convolutions, global pooling and a classifier.

    On Cortex-M4 a CMSIS-NN standard convolution costs about 2.3 instructions per MAC against about 7.9 for a 3x3
    depthwise one, so at a fixed time budget plain convolutions buy more MACs than depthwise-separable blocks.
    """
    from tf_keras import layers

    m = config.model
    inputs = layers.Input((config.num_slices, config.frontend.channels, 1), name="features")
    x = layers.Conv2D(m.filters, m.kernel, strides=m.stride, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(m.blocks):
        x = layers.Conv2D(m.filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    outputs = _classifier(config, x)
    return _model(inputs, outputs, "cnn")


def _classifier(config: Config, x: typing.Any) -> typing.Any:
    """Dropout, then global average pooling or flattening (config.model.head), then a softmax layer."""
    from tf_keras import layers

    x = layers.Dropout(config.model.dropout)(x)
    if config.model.head == "average":
        x = layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = layers.Flatten()(x)
    return layers.Dense(len(config.labels), activation="softmax")(x)


def _model(inputs: typing.Any, outputs: typing.Any, name: str) -> tf_keras.Model:
    import tf_keras

    return tf_keras.Model(inputs, outputs, name=name)


ARCHITECTURES: dict[str, typing.Callable[[Config], typing.Any]] = {"tiny_conv": tiny_conv, "ds_cnn": ds_cnn, "cnn": cnn}


def build(config: Config) -> tf_keras.Model:
    """The float model the config describes."""
    return ARCHITECTURES[config.model.architecture](config)


# The candidate architectures scripts/compare_models.py trains and scripts/m4_cost_points.py measures: name ->
# overrides of a base config (section -> key -> value, see config.with_overrides).
CANDIDATES = {
    "tiny_conv": {"model": {"architecture": "tiny_conv", "filters": 8, "kernel": [10, 8], "stride": [2, 2], "head": "average"}},
    "ds_cnn_small": {"model": {"architecture": "ds_cnn", "filters": 24, "blocks": 3, "kernel": [10, 4],
                               "stride": [3, 4], "head": "average"}},
    "ds_cnn_medium": {"model": {"architecture": "ds_cnn", "filters": 32, "blocks": 3, "kernel": [10, 4],
                                "stride": [2, 4], "head": "average"}},
    "cnn": {"model": {"architecture": "cnn", "filters": 32, "blocks": 2, "kernel": [10, 4], "stride": [2, 4],
                      "head": "average"}},
    "ds_cnn_small_flatten": {"model": {"architecture": "ds_cnn", "filters": 24, "blocks": 3, "kernel": [10, 4],
                                       "stride": [3, 4], "head": "flatten"}},
    "cnn_flatten": {"model": {"architecture": "cnn", "filters": 32, "blocks": 2, "kernel": [10, 4],
                              "stride": [2, 4], "head": "flatten"}},
}
