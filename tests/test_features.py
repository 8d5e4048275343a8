"""Features: the microfrontend the board runs, identical on every path that computes it."""

import numpy as np
import pytest

from kws.config import from_dict
from kws.frontends.microfrontend import (
    FLOAT_SCALE,
    PCAN_LUT_SIZE,
    PCAN_LUT_UNUSED,
    ClipFeatures,
    Frontend,
    Int8Scaling,
)


def _clip(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    tone = 4000 * np.sin(2 * np.pi * (300 + 900 * t) * t) * (t > 0.3) * (t < 0.7)
    return np.clip(tone + rng.normal(0, 200, 16000), -32768, 32767).astype(np.int16)


def test_same_as_tensorflow_audio_microfrontend_op():
    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

    config = from_dict({"frontend": {"channels": 32, "pcan": True, "min_signal_remaining": 0.1}})
    fe = config.frontend
    for seed in range(3):
        clip = _clip(seed)
        expected = op.audio_microfrontend(
            tf.constant(clip), sample_rate=16000, window_size=fe.window_ms, window_step=fe.stride_ms,
            num_channels=fe.channels, upper_band_limit=fe.upper_band_hz, lower_band_limit=fe.lower_band_hz,
            smoothing_bits=fe.smoothing_bits, even_smoothing=fe.even_smoothing, odd_smoothing=fe.odd_smoothing,
            min_signal_remaining=fe.min_signal_remaining, enable_pcan=fe.pcan, pcan_strength=fe.pcan_strength,
            pcan_offset=fe.pcan_offset, gain_bits=fe.gain_bits, enable_log=fe.log, scale_shift=fe.scale_shift,
            out_type=tf.uint16).numpy()
        np.testing.assert_array_equal(ClipFeatures(config).raw(clip), expected)


def test_shape_and_determinism():
    config = from_dict({})
    features = ClipFeatures(config)
    first = features.raw(_clip())
    assert first.shape == (49, 40) and first.dtype == np.uint16
    assert first.max() > 0
    np.testing.assert_array_equal(features.raw(_clip()), first)  # reset between clips: no state leaks
    np.testing.assert_allclose(features.float(_clip()), first * FLOAT_SCALE, rtol=1e-6)


def test_streaming_in_any_chunks_equals_one_call():
    config = from_dict({})
    audio = np.concatenate([_clip(1), _clip(2)])
    whole = Frontend(config.frontend, 16000).process(audio)
    streaming = Frontend(config.frontend, 16000)
    rng = np.random.default_rng(0)
    parts, start = [], 0
    while start < len(audio):
        size = int(rng.integers(1, 700))
        parts.append(streaming.process(audio[start:start + size]))
        start += size
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(whole) == (len(audio) - 480) // 320 + 1


def test_state_carries_over_unlike_a_fresh_clip():
    # Noise reduction and PCAN adapt: the second second of a stream differs from the same audio after a reset.
    config = from_dict({})
    stream = Frontend(config.frontend, 16000)
    stream.process(_clip(1))
    continued = stream.process(_clip(2))
    assert not np.array_equal(continued[:10], ClipFeatures(config).raw(_clip(2))[:10])


def test_bad_clip_length_is_refused():
    with pytest.raises(ValueError, match="expected 49"):
        ClipFeatures(from_dict({})).raw(np.zeros(8000, np.int16))


@pytest.mark.parametrize(("scale", "zero_point"), [(0.1015625, -128), (0.0859, -100), (0.2, -128), (0.05, 3)])
def test_int8_scaling_round_trips_the_quantization(scale, zero_point):
    raw = np.arange(0, 1200, dtype=np.uint16).reshape(30, 40)
    scaling = Int8Scaling.from_quantization(scale, zero_point)
    q = scaling.apply(raw)
    assert q.dtype == np.int8 and q.shape == raw.shape
    ideal = np.clip(np.round(raw * FLOAT_SCALE / scale) + zero_point, -128, 127)
    assert np.abs(q.astype(int) - ideal).max() <= 1
    assert np.mean(q == ideal) > 0.99  # only exact .5 ties may round the other way
    inside = (ideal > -128) & (ideal < 127)
    dequantized = (q.astype(np.float64) - zero_point) * scale
    assert np.abs(dequantized - raw * FLOAT_SCALE)[inside].max() <= scale * 0.5 + 1e-6


@pytest.mark.parametrize("channels", [40, 32])
def test_tables_are_read_from_the_mirrored_state(channels):
    """The state structs mirror the library's headers: every table has its documented shape and values, and the
    fields after them (down to the last struct) hold what the parameters say."""
    config = from_dict({"frontend": {"channels": channels}})
    fe = config.frontend
    frontend = Frontend(fe, 16000)
    tables = frontend.tables()
    window = tables.window
    assert len(window) == fe.window_ms * 16 and window.max() == 4096  # Hann, 12-bit fixed point, symmetric
    np.testing.assert_array_equal(window, window[::-1])
    assert len(tables.channel_frequency_starts) == len(tables.channel_widths) == channels + 1
    assert len(tables.weights) == int((tables.channel_weight_starts + tables.channel_widths).max())
    taps = tables.weights != 0
    assert np.all(tables.weights[taps] + tables.unweights[taps] == 4096)  # a tap's weight and unweight sum to 1
    assert 0 < tables.filterbank_start_index < tables.filterbank_end_index <= 257
    assert (tables.even_smoothing, tables.odd_smoothing, tables.min_signal_remaining) == tuple(
        int(value * (1 << 14)) for value in (fe.even_smoothing, fe.odd_smoothing, fe.min_signal_remaining))
    assert len(tables.pcan_gain_lut) == PCAN_LUT_SIZE and not tables.pcan_gain_lut[PCAN_LUT_UNUSED].any()
    assert tables.pcan_gain_lut[0] == 32636  # 2^21 * 80^-0.95, the curve's start for the default strength/offset
    state = frontend._state
    assert state.noise_reduction.num_channels == state.pcan_gain_control.num_channels == channels
    assert (state.log_scale.enable_log, state.log_scale.scale_shift) == (int(fe.log), fe.scale_shift)
    again = Frontend(fe, 16000).tables()
    for field, value in vars(tables).items():
        np.testing.assert_array_equal(getattr(again, field), value)
