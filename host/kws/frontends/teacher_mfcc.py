"""The teacher's front ends, in TensorFlow: `FRONTENDS` maps a front end's name (`teacher.frontend` in the config,
one of `kws.config.TEACHER_FRONTEND_NAMES`) to a function from a batch of clips to the teacher's input features.
The board never runs these; `kws.frontends.mfcc` is the integer C that computes `mlperf_mfcc`'s features on it.

The first is `mlperf_mfcc`, the MFCCs of the MLPerf Tiny keyword-spotting benchmark (`get_dataset.py`, feature_type
"mfcc"), which its reference DS-CNN was trained on:

1. 16,000 samples as float (zero-padded at the end), divided by the clip's signed maximum;
2. `tf.signal.stft(frame_length=480, frame_step=320, fft_length=512, hann_window)`, magnitude (not squared);
3. 40 mel bins over 20-4,000 Hz (`linear_to_mel_weight_matrix(40, 257, 16000, 20, 4000)`);
4. `log(mel + 1e-6)`, `mfccs_from_log_mel_spectrograms` and its first 10 coefficients: (49, 10).

A clip whose maximum is not positive (digital silence, or a clip below zero throughout) would be divided by zero or
flipped by the benchmark's formula; such a clip is left unscaled here instead (the benchmark's data holds none).
TensorFlow is imported only when a front end runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frontend:
    """A teacher front end: clips (n, samples) of int16 or float at `sample_rate` -> features (n, *shape)."""

    name: str
    sample_rate: int
    samples: int
    shape: tuple[int, ...]
    compute: Callable[[np.ndarray], np.ndarray]


def mlperf_mfcc(clips: np.ndarray) -> np.ndarray:
    """The MLPerf Tiny KWS MFCCs of a batch of 16 kHz clips, (n, 49, 10) float32 (see the module's docstring)."""
    import tensorflow as tf

    x = np.asarray(clips, np.float32)
    if x.shape[1] < 16000:
        x = np.pad(x, ((0, 0), (0, 16000 - x.shape[1])))
    x = x[:, :16000]
    peak = x.max(axis=1, keepdims=True)
    x = x / np.where(peak > 0, peak, 1.0)
    stft = tf.signal.stft(x, frame_length=480, frame_step=320, fft_length=None, window_fn=tf.signal.hann_window)
    spectrogram = tf.abs(stft)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(40, int(stft.shape[-1]), 16000, 20.0, 4000.0)
    mel = tf.tensordot(spectrogram, mel_matrix, 1)
    mfcc = tf.signal.mfccs_from_log_mel_spectrograms(tf.math.log(mel + 1e-6))[..., :10]
    return mfcc.numpy().astype(np.float32)


FRONTENDS: dict[str, Frontend] = {
    "mlperf_mfcc": Frontend("mlperf_mfcc", 16000, 16000, (49, 10), mlperf_mfcc),
}
