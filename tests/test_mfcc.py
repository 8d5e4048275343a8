"""The integer C MFCC front end (kws.frontends.mfcc, firmware/lib/kws_core/kws_mfcc.c) against TensorFlow's float reference,
on generated audio: accuracy, streaming, reset, full scale, silence, negative clips, quantization, other parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kws.frontends import mfcc
from kws.frontends.teacher_mfcc import mlperf_mfcc

HEADER = Path(__file__).resolve().parents[1] / "firmware" / "test" / "kws_mfcc_tables.h"
RATE = 16000
# measured on 3,408 Speech Commands test clips: max 0.0009, mean 9e-6 (scripts/mfcc_check.py; the int8 step is 0.585)
MAX_ERROR, MEAN_ERROR = 0.05, 1e-3
# pure tones leave mel bands with almost nothing in them (1e-5 of the peak), where TensorFlow's float32 is itself
# 0.014 (mean) off a float64 computation; the C is as far off, not always the same way
TONE_MAX_ERROR, TONE_MEAN_ERROR = 0.1, 0.02
TONES = {"sine 440 Hz", "sine 3 kHz, quiet", "chirp 100-3900 Hz"}


def tf_mfcc(clips: np.ndarray, p: mfcc.MfccParams) -> np.ndarray:
    """mlperf_mfcc with any parameters (TensorFlow, float32)."""
    import tensorflow as tf

    x = clips.astype(np.float32)
    peak = x.max(axis=1, keepdims=True)
    x = x / np.where(peak > 0, peak, 1.0)
    stft = tf.signal.stft(x, p.window, p.stride, p.fft_length, window_fn=tf.signal.hann_window)
    matrix = tf.signal.linear_to_mel_weight_matrix(p.mel_bins, p.fft_length // 2 + 1, p.sample_rate, p.lower_hz,
                                                   p.upper_hz)
    mel = tf.tensordot(tf.abs(stft), matrix, 1)
    return tf.signal.mfccs_from_log_mel_spectrograms(tf.math.log(mel + p.log_offset))[..., :p.coefficients].numpy()


def quiet_tail(clip: np.ndarray) -> np.ndarray:
    """The clip with its last 160 samples halved, so that its maximum is in the samples the 49 frames cover (the C
    front end's peak) as it is for TensorFlow (all 16,000)."""
    out = clip.astype(np.int16).copy()
    out[-160:] //= 2
    return out


def generated_clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(RATE) / RATE
    envelope = np.exp(-((t - 0.5) / 0.15) ** 2)
    chirp = np.sin(2 * np.pi * (100 * t + 1900 * t**2))
    clips = {
        "sine 440 Hz": 12000 * np.sin(2 * np.pi * 440 * t),
        "sine 3 kHz, quiet": 40 * np.sin(2 * np.pi * 3000 * t),
        "chirp 100-3900 Hz": 20000 * chirp * envelope,
        "noise": rng.normal(0, 3000, RATE),
        "speech-like noise with a silent end": np.where(t < 0.7, rng.normal(0, 6000, RATE) * envelope, 0),
        "noise at 1 LSB": rng.integers(-1, 2, RATE),
    }
    return {name: quiet_tail(np.clip(np.round(clip), -32768, 32767)) for name, clip in clips.items()}


def errors(c: np.ndarray, tf: np.ndarray) -> tuple[float, float]:
    diff = np.abs(c.astype(np.float64) - tf)
    return float(diff.max()), float(diff.mean())


def test_tables_header_in_the_repository_is_current() -> None:
    assert HEADER.read_text() == mfcc.c_header_file(mfcc.default_tables()), \
        "regenerate it: python -m kws.frontends.mfcc > firmware/test/kws_mfcc_tables.h"


def test_mel_weights_are_tensorflows() -> None:
    import tensorflow as tf

    p = mfcc.MfccParams()
    ours = mfcc.mel_weight_matrix(p)
    theirs = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # TensorFlow computes it in float32; Q15 steps are 3e-5
    tables = mfcc.default_tables()
    assert tables.first_bin == 1 and tables.num_bins == 127  # bins above 4,000 Hz have no weight


@pytest.mark.parametrize("name", list(generated_clips()))
def test_c_matches_tensorflow_on_generated_audio(name: str) -> None:
    clip = generated_clips()[name]
    worst, mean = errors(mfcc.mfcc_clip(clip), mlperf_mfcc(clip[None])[0])
    limits = (TONE_MAX_ERROR, TONE_MEAN_ERROR) if name in TONES else (MAX_ERROR, MEAN_ERROR)
    assert worst < limits[0] and mean < limits[1], (name, worst, mean)


@pytest.mark.parametrize("kind", ["square", "clipped sine", "full-scale noise"])
def test_full_scale_input_does_not_overflow(kind: str) -> None:
    t = np.arange(RATE)
    clip = {"square": np.where((t // 8) % 2, 32767, -32768),
            "clipped sine": np.clip(4 * 32768 * np.sin(2 * np.pi * 1000 * t / RATE), -32768, 32767),
            "full-scale noise": np.where(np.random.default_rng(2).random(RATE) < 0.5, 32767, -32768)}[kind]
    clip = clip.astype(np.int16)
    worst, mean = errors(mfcc.mfcc_clip(clip), mlperf_mfcc(clip[None])[0])
    assert worst < MAX_ERROR and mean < MEAN_ERROR, (kind, worst, mean)


def test_digital_silence_is_log_of_the_offset() -> None:
    clip = np.zeros(RATE, np.int16)
    c = mfcc.mfcc_clip(clip)
    expected = np.zeros((49, 10))
    expected[:, 0] = 40 * np.log(1e-6) * np.sqrt(2 / 40)
    np.testing.assert_allclose(c, expected, atol=1e-3)
    np.testing.assert_allclose(mlperf_mfcc(clip[None])[0], expected, atol=1e-3)


def test_a_clip_below_zero_is_left_unscaled_like_tensorflow() -> None:
    rng = np.random.default_rng(3)
    clip = quiet_tail(-rng.integers(1, 3000, RATE).astype(np.int16))
    worst, mean = errors(mfcc.mfcc_clip(clip), mlperf_mfcc(clip[None])[0])
    assert worst < MAX_ERROR and mean < MEAN_ERROR, (worst, mean)
    assert mfcc.mfcc_clip(clip)[:, 0].min() > 0  # unscaled int16 units: far above a normalized clip's


def test_peak_is_taken_over_the_frames_samples() -> None:
    rng = np.random.default_rng(4)
    clip = rng.integers(-1000, 1000, RATE).astype(np.int16)
    clip[-100] = 30000  # only TensorFlow sees it: the 49 frames end at sample 15,840
    cut = clip.copy()
    cut[15840:] = 0
    np.testing.assert_array_equal(mfcc.mfcc_clip(clip), mfcc.mfcc_clip(cut))
    assert errors(mfcc.mfcc_clip(clip), mlperf_mfcc(clip[None])[0])[0] > 1.0  # the documented difference


def test_streaming_in_odd_chunks_equals_the_whole_clip() -> None:
    clip = generated_clips()["speech-like noise with a silent end"]
    front = mfcc.Mfcc()
    whole = front.clip(clip)
    front.reset()
    rng = np.random.default_rng(5)
    frames, at, counts = 0, 0, []
    while at < len(clip):
        size = int(rng.choice([1, 7, 159, 161, 320, 479, 481, 1001]))
        frames += front.process(clip[at:at + size])
        at += size
        counts.append(frames)
    assert frames == 49 and front.full
    np.testing.assert_array_equal(front.window(), whole)


def test_frames_complete_after_480_samples_then_every_320() -> None:
    front = mfcc.Mfcc()
    steps = [front.process(np.zeros(n, np.int16)) for n in (479, 1, 319, 1, 640, 319, 1)]
    assert steps == [0, 1, 0, 1, 2, 0, 1]


def test_reset_forgets_samples_and_frames() -> None:
    clips = generated_clips()
    front = mfcc.Mfcc()
    fresh = front.clip(clips["noise"])
    front.process(clips["sine 440 Hz"][:5000])  # frames and a partial frame
    front.reset()
    assert not front.full
    front.process(clips["noise"])
    np.testing.assert_array_equal(front.window(), fresh)


def test_missing_frames_are_silent_frames() -> None:
    rng = np.random.default_rng(6)
    start = rng.integers(-2000, 2000, 480 + 9 * 320).astype(np.int16)  # 10 frames
    front = mfcc.Mfcc()
    assert front.process(start) == 10 and not front.full
    window = front.window()
    silent = np.zeros(10)
    silent[0] = 40 * np.log(1e-6) * np.sqrt(2 / 40)
    np.testing.assert_allclose(window[:39] / 2**16, np.tile(silent, (39, 1)), atol=1e-3)
    # the 10 frames are those of the clip that starts with them (zeros after them change neither frames nor peak)
    np.testing.assert_array_equal(window[39:], front.clip(np.pad(start, (0, RATE - len(start))))[:10])


def test_batch_equals_one_clip_at_a_time() -> None:
    clips = np.stack(list(generated_clips().values()))
    batches = list(mfcc.iter_mfcc(iter(clips), batch_size=4))
    assert [len(batch) for batch in batches] == [4, 2]
    batch = mfcc.mfcc_batch(clips)
    assert batch.dtype == np.float32 and batch.shape == (len(clips), 49, 10)
    np.testing.assert_array_equal(batch, np.stack([mfcc.mfcc_clip(clip) for clip in clips]))
    np.testing.assert_array_equal(mfcc.mfcc_clip(clips[0][:12000]), mfcc.mfcc_clip(np.pad(clips[0][:12000], (0, 4000))))
    with pytest.raises(TypeError):
        mfcc.mfcc_clip(np.zeros(RATE, np.float32))


def test_quantize_rounds_half_up_and_saturates() -> None:
    multiplier, shift = mfcc.quantization_multiplier(1.0)  # one int8 step per 1.0
    assert (multiplier, shift) == (2**30, 46)
    q = np.array([0, 2**15, 2**15 - 1, -2**15, -3 * 2**15, 200 * 2**16, -300 * 2**16, 2**31 - 1], np.int32)
    np.testing.assert_array_equal(mfcc.quantize(q, multiplier, shift, 10), [10, 11, 10, 10, 9, 127, -128, 127])
    with pytest.raises(ValueError):
        mfcc.quantize(q, -1, 10, 0)
    with pytest.raises(ValueError):
        mfcc.quantization_multiplier(2.0**-60)


def test_quantize_agrees_with_float_rounding_at_the_reference_models_scale() -> None:
    scale, zero_point = 0.5847029089927673, 83
    multiplier, shift = mfcc.quantization_multiplier(scale)
    rng = np.random.default_rng(8)
    q = rng.integers(-130 * 2**16, 30 * 2**16, 100000).astype(np.int32)
    expected = np.clip(np.floor(q / 2**16 / scale + 0.5) + zero_point, -128, 127)
    assert np.mean(mfcc.quantize(q, multiplier, shift, zero_point) == expected) > 0.9999


def test_other_parameters_match_tensorflow() -> None:
    p = mfcc.MfccParams(sample_rate=8000, window=200, stride=80, fft_length=256, mel_bins=25, lower_hz=60.0,
                        upper_hz=3800.0, coefficients=13, clip_samples=8000)
    tables = mfcc.MfccTables.build(p)
    front = mfcc.Mfcc(tables)
    rng = np.random.default_rng(9)
    t = np.arange(8000) / 8000
    clip = np.round(8000 * np.sin(2 * np.pi * 700 * t) + rng.normal(0, 500, 8000)).astype(np.int16)
    clip[-(8000 - (p.frames - 1) * p.stride - p.window):] //= 4  # beyond the last frame: keep the peak out of it
    c = front.clip(clip) / 2**16
    assert c.shape == (p.frames, 13)
    worst, mean = errors(c, tf_mfcc(clip[None], p)[0])
    assert worst < MAX_ERROR and mean < MEAN_ERROR, (worst, mean)


def test_tables_refuse_what_the_c_cannot_take() -> None:
    with pytest.raises(ValueError):
        mfcc.MfccTables.build(mfcc.MfccParams(fft_length=500))
    with pytest.raises(ValueError):
        mfcc.MfccTables.build(mfcc.MfccParams(mel_bins=65))
    arrays = mfcc.default_tables().c_arrays()
    assert arrays["window"].ctype == "int32_t" and arrays["window"].values.shape == (480,)
    assert arrays["dct"].values.shape == (10 * 20,) and arrays["mel_band"].ctype == "uint8_t"
    assert "static const int32_t KWS_MFCC_WINDOW[480] = {" in mfcc.default_tables().c_header()
