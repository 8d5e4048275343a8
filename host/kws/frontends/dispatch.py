"""The board's front ends as training sees them: `config.frontend.kind` picks the one that turns clips into the
model's features, exactly as the firmware computes them.

- "microfrontend": the TFLM microfrontend (kws.frontends.microfrontend), uint16 slices;
- "mlperf_mfcc": the MLPerf Tiny KWS MFCCs (kws.frontends.mfcc), the fixed-point C of firmware/lib/kws_core.

Each gives integer features (`raw`, what the board computes) and the float features the model trains on
(`to_float`); the board maps the same integers to the model's int8 input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from kws.config import Config


class MfccClipFeatures:
    """MLPerf MFCCs of whole clips through the board's C (kws.frontends.mfcc), each from a reset front end (as
    training and CLIP_BEGIN do): int32 in Q16."""

    def __init__(self, config: Config) -> None:
        from kws.frontends import mfcc

        self.config = config
        self._frontend = mfcc.Mfcc()

    def raw(self, clip: np.ndarray) -> np.ndarray:
        return self._frontend.clip(clip)


def clip_features(config: Config) -> object:
    """The config's front end over whole clips: `.raw(clip)`."""
    if config.frontend.kind == "mlperf_mfcc":
        return MfccClipFeatures(config)
    from kws.frontends.microfrontend import ClipFeatures

    return ClipFeatures(config)


def raw_many(extractor: object, clips: Sequence[np.ndarray]) -> np.ndarray:
    """Features of a batch of clips."""
    return np.stack([extractor.raw(clip) for clip in clips])


def implementation(config: Config) -> str:
    """What the features' values depend on beyond the config: a change to the front end's code changes it."""
    if config.frontend.kind != "mlperf_mfcc":
        return "tflm-microfrontend"
    from kws.board import core
    from kws.frontends import mfcc

    digest = hashlib.sha256()
    for path in sorted(core.CORE_DIR.glob("kws_mfcc.[ch]")):
        digest.update(path.read_bytes())
    for array in mfcc.default_tables().c_arrays().values():
        digest.update(np.ascontiguousarray(array.values).tobytes())
    return f"kws_mfcc-{digest.hexdigest()[:16]}"


def raw_batch(config: Config, clips: Iterable[np.ndarray], count: int, label: str) -> np.ndarray:
    """Features of `count` clips, (count, num_slices, channels) in the front end's integers, with progress."""
    from kws.common.progress import Progress

    extractor = clip_features(config)
    out = np.zeros((count, config.num_slices, config.frontend.channels), raw_dtype(config))
    with Progress(count, label, unit="clips") as progress:
        for i, clip in enumerate(clips):
            out[i] = extractor.raw(clip)
            progress.update()
    return out


def raw_dtype(config: Config) -> type:
    return np.int32 if config.frontend.kind == "mlperf_mfcc" else np.uint16


def to_float(config: Config, raw: np.ndarray) -> np.ndarray:
    """The float model input of raw features."""
    if config.frontend.kind == "mlperf_mfcc":
        from kws.frontends.mfcc import Q

        return raw.astype(np.float32) / np.float32(2**Q)
    from kws.frontends.microfrontend import to_float as microfrontend_float

    return microfrontend_float(raw)


@dataclass(frozen=True)
class MfccScaling:
    """Q16 MFCCs -> int8 model input: zero_point + round(q * multiplier / 2**shift), clamped; the board's
    kws_mfcc_quantize, with multiplier and shift derived from the model's input scale."""

    multiplier: int
    shift: int
    zero_point: int

    @classmethod
    def from_quantization(cls, scale: float, zero_point: int) -> MfccScaling:
        from kws.frontends.mfcc import quantization_multiplier

        return cls(*quantization_multiplier(scale), zero_point)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        from kws.frontends.mfcc import quantize

        return quantize(raw, self.multiplier, self.shift, self.zero_point)


def int8_scaling(config: Config, scale: float, zero_point: int) -> object:
    """The board's map from the front end's integers to the model's int8 input (`.apply(raw)`, and the multiplier,
    shift and zero point model_settings.h carries), derived from the model's input quantization."""
    if config.frontend.kind == "mlperf_mfcc":
        return MfccScaling.from_quantization(scale, zero_point)
    from kws.frontends.microfrontend import Int8Scaling

    return Int8Scaling.from_quantization(scale, zero_point)


class MicrofrontendWindow:
    """The microfrontend as the board streams it: each slice is scaled to int8 as it is made and enters a sliding
    window of the last `num_slices` slices, which starts as silence (the int8 value of a raw 0 slice)."""

    def __init__(self, config: Config, scaling: object) -> None:
        from kws.frontends.microfrontend import Frontend

        self._frontend = Frontend(config.frontend, config.audio.sample_rate)
        self._scaling = scaling
        self._silent_slice = scaling.apply(np.zeros((1, config.frontend.channels), np.uint16))[0]
        self._window = np.empty((config.num_slices, config.frontend.channels), np.int8)
        self.reset()

    def reset(self) -> None:
        self._frontend.reset()
        self._window[:] = self._silent_slice
        self._slices = 0

    def process(self, samples: np.ndarray) -> int:
        """Feeds int16 samples; returns the number of slices they completed."""
        raw = self._frontend.process(samples)
        for scaled in self._scaling.apply(raw):
            self._window[:-1] = self._window[1:]
            self._window[-1] = scaled
        self._slices += len(raw)
        return len(raw)

    @property
    def full(self) -> bool:
        return self._slices >= len(self._window)

    def window(self) -> np.ndarray:
        """A copy of the int8 model input, oldest slice first."""
        return self._window.copy()


class MfccWindow:
    """The MLPerf MFCCs as the board streams them: mel energies per frame as audio comes, the window's MFCCs (peak
    normalization over the window's frames, log, DCT) and their int8 only when the model asks for them."""

    def __init__(self, config: Config, scaling: object) -> None:
        from kws.frontends.mfcc import Mfcc

        self._frontend = Mfcc(frames=config.num_slices)
        self._scaling = scaling

    def reset(self) -> None:
        self._frontend.reset()

    def process(self, samples: np.ndarray) -> int:
        return self._frontend.process(samples)

    @property
    def full(self) -> bool:
        return self._frontend.full

    def window(self) -> np.ndarray:
        return self._scaling.apply(self._frontend.window())


def streaming_window(config: Config, scaling: object) -> MicrofrontendWindow | MfccWindow:
    """The config's front end and the model's int8 input window, streaming as on the board."""
    return MfccWindow(config, scaling) if config.frontend.kind == "mlperf_mfcc" else MicrofrontendWindow(config, scaling)
