"""Noise and augmentation: what turns one recorded clip into many training examples (speed, time shift, room
reverb, gain, background noise at an SNR), and the noise itself (recordings, or generated white, pink and brown
noise when none are given). Used by `kws.data.dataset` (silence crops), `kws.data.features` (augmented copies) and
the evaluation streams (`snr_gain`, `rms`)."""

from __future__ import annotations

import numpy as np

from kws.config import Config
from kws.data import audio


def generated_noise(sample_rate: int, rng: np.random.Generator, seconds: int = 30) -> list[np.ndarray]:
    """White, pink and brown noise: the offline default when no recordings are given."""
    white = rng.standard_normal(sample_rate * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(sample_rate * seconds))
    frequency = np.maximum(np.fft.rfftfreq(sample_rate * seconds), 1.0 / sample_rate)
    pink = np.fft.irfft(spectrum / np.sqrt(frequency))
    brown = np.fft.irfft(spectrum / frequency)
    return [(n / np.abs(n).max() * 0.5).astype(np.float32) for n in (white, pink, brown)]


def rms(x: np.ndarray) -> float:
    """Root mean square (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def noise_crop(noise: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    source = noise[rng.integers(len(noise))]
    if len(source) < length:
        source = np.tile(source, length // len(source) + 1)
    start = rng.integers(len(source) - length + 1)
    return source[start:start + length]


def mix_at_snr(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Adds noise scaled so that clip power / noise power = snr_db (float in, float out)."""
    return clip + noise * snr_gain(rms(clip), rms(noise), snr_db)


def snr_gain(signal_rms: float, noise_rms: float, snr_db: float) -> float:
    """The factor that puts noise of noise_rms snr_db below a signal of signal_rms (0 if either is silent)."""
    if signal_rms == 0 or noise_rms == 0:
        return 0.0
    return signal_rms / noise_rms / 10 ** (snr_db / 20)


def augment(config: Config, clip: np.ndarray, noise: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One augmented version of an int16 clip: speed, time shift, room reverb, gain, background noise at a random
    SNR."""
    aug = config.augment
    x = clip.astype(np.float32) / 32768.0
    if aug.speed[1] > aug.speed[0] or aug.speed[0] != 1.0:
        # Speed perturbation (Ko et al. 2015): resample by a random factor, then restore the clip length.
        factor = rng.uniform(*aug.speed)
        x = audio.fit_length(audio.resample(x, round(100 * factor), 100).astype(np.float32), len(x))
    shift = int(rng.integers(-aug.time_shift_ms, aug.time_shift_ms + 1)) * config.audio.sample_rate // 1000
    x = np.roll(x, shift)
    if shift > 0:
        x[:shift] = 0
    elif shift < 0:
        x[shift:] = 0
    if aug.reverb_probability and rng.random() < aug.reverb_probability:
        x = reverberate(x, room_response(rng.uniform(*aug.rt60_ms) / 1000, config.audio.sample_rate, rng))
    x = x * 10 ** (rng.uniform(*aug.gain_db) / 20)
    if rng.random() < aug.noise_probability:
        x = mix_at_snr(x, noise_crop(noise, len(x), rng), rng.uniform(*aug.snr_db))
    return audio.float_to_int16(x)


def room_response(rt60_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then a Gaussian tail decaying 60 dB in rt60_s (Polack's
    statistical model), starting after 2-10 ms as the first reflections would, at a random direct-to-reverberant
    ratio of 0-12 dB. Good enough to give dry synthetic speech the smear of a real room."""
    length = int(rt60_s * sample_rate)
    delay = int(rng.uniform(0.002, 0.010) * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * 10 ** (-3 * t / rt60_s)
    tail[:delay] = 0
    response = np.zeros(length)
    response[0] = 1.0
    tail_energy = float(np.sum(tail**2))
    if tail_energy > 0:
        response += tail * np.sqrt(10 ** (-rng.uniform(0, 12) / 10) / tail_energy)
    return response


def reverberate(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """x played through a room (its impulse response), same length and RMS as x."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(x, response)[: len(x)]
    return (wet * (rms(x) / max(rms(wet), 1e-12))).astype(np.float32)
