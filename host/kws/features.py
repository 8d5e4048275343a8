"""Features: the TFLM audio microfrontend, exactly the C code the board runs.

TensorFlow's `audio_microfrontend` op is built from the same microfrontend C library that the TFLM Arduino library
compiles for the board, and TensorFlow's op library exports that C API. We call it directly through ctypes instead
of through the TensorFlow op because the op resets its state at every call (it processes a whole signal), while
the board keeps the noise-reduction and PCAN state across the whole stream; calling the C functions lets the
virtual board stream exactly as the device does, and costs no TensorFlow import. `tests/test_features.py` checks
that whole-clip output is identical to the TensorFlow op's.

Scaling: the model sees float features `raw * 10/256` in training (micro_speech's convention); the device maps the
raw uint16 output straight to int8 with the integer multiplier and shift that export derives from the model's input
quantization (`int8_scaling`), using `kws_scale_features` from firmware/lib/kws_core.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.config import Frontend as FrontendParams
from kws.quiet import native_stderr_silenced

FLOAT_SCALE = 10.0 / 256.0  # raw microfrontend output -> the float features the model trains on


class _WindowConfig(ctypes.Structure):
    _fields_ = [("size_ms", ctypes.c_size_t), ("step_size_ms", ctypes.c_size_t)]


class _FilterbankConfig(ctypes.Structure):
    _fields_ = [("num_channels", ctypes.c_int), ("upper_band_limit", ctypes.c_float),
                ("lower_band_limit", ctypes.c_float), ("output_scale_shift", ctypes.c_int)]


class _NoiseReductionConfig(ctypes.Structure):
    _fields_ = [("smoothing_bits", ctypes.c_int), ("even_smoothing", ctypes.c_float),
                ("odd_smoothing", ctypes.c_float), ("min_signal_remaining", ctypes.c_float)]


class _PcanGainControlConfig(ctypes.Structure):
    _fields_ = [("enable_pcan", ctypes.c_int), ("strength", ctypes.c_float), ("offset", ctypes.c_float),
                ("gain_bits", ctypes.c_int)]


class _LogScaleConfig(ctypes.Structure):
    _fields_ = [("enable_log", ctypes.c_int), ("scale_shift", ctypes.c_int)]


class _FrontendConfig(ctypes.Structure):
    _fields_ = [("window", _WindowConfig), ("filterbank", _FilterbankConfig),
                ("noise_reduction", _NoiseReductionConfig), ("pcan_gain_control", _PcanGainControlConfig),
                ("log_scale", _LogScaleConfig)]


class _FrontendOutput(ctypes.Structure):
    _fields_ = [("values", ctypes.POINTER(ctypes.c_uint16)), ("size", ctypes.c_size_t)]


# struct FrontendState holds only sizes and pointers to buffers the library allocates (well under 1 KB on
# 64-bit hosts); we hand it opaque, generously sized storage rather than mirroring its private layout.
_STATE_BYTES = 4096


class FrontendError(RuntimeError):
    """The microfrontend library is missing or refused the parameters."""


@cache
def _library() -> ctypes.CDLL:
    import importlib.util

    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        raise FrontendError("TensorFlow is not installed: the microfrontend comes from its op library "
                            "(pip install -e . installs it)")
    path = Path(spec.origin).parent / "lite/experimental/microfrontend/python/ops/_audio_microfrontend_op.so"
    if not path.exists():
        raise FrontendError(f"{path}: TensorFlow's microfrontend op library is missing")
    with native_stderr_silenced():  # TensorFlow's start-up notices (oneDNN, CUDA) on loading
        library = ctypes.CDLL(str(path))
    library.FrontendPopulateState.argtypes = [ctypes.POINTER(_FrontendConfig), ctypes.c_void_p, ctypes.c_int]
    library.FrontendPopulateState.restype = ctypes.c_int
    library.FrontendProcessSamples.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.c_size_t)]
    library.FrontendProcessSamples.restype = _FrontendOutput
    library.FrontendReset.argtypes = [ctypes.c_void_p]
    library.FrontendFreeStateContents.argtypes = [ctypes.c_void_p]
    return library


def frontend_config(params: FrontendParams) -> _FrontendConfig:
    """The C FrontendConfig, field by field as the firmware fills it from model_settings.h."""
    return _FrontendConfig(
        _WindowConfig(params.window_ms, params.stride_ms),
        _FilterbankConfig(params.channels, params.upper_band_hz, params.lower_band_hz, 0),
        _NoiseReductionConfig(params.smoothing_bits, params.even_smoothing, params.odd_smoothing,
                              params.min_signal_remaining),
        _PcanGainControlConfig(int(params.pcan), params.pcan_strength, params.pcan_offset, params.gain_bits),
        _LogScaleConfig(int(params.log), params.scale_shift),
    )


class Frontend:
    """A streaming microfrontend: state carries over between `process` calls, as on the board."""

    def __init__(self, params: FrontendParams, sample_rate: int) -> None:
        self.channels = params.channels
        self._library = _library()
        self._state = ctypes.create_string_buffer(_STATE_BYTES)
        if not self._library.FrontendPopulateState(ctypes.byref(frontend_config(params)), self._state, sample_rate):
            raise FrontendError(f"the microfrontend rejected the parameters {params}")

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feeds int16 samples; returns the uint16 feature slices they complete, shape (n, channels)."""
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        pointer = samples.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        consumed = ctypes.c_size_t()
        slices = []
        offset, total = 0, len(samples)
        while offset < total:
            output = self._library.FrontendProcessSamples(
                self._state, ctypes.cast(ctypes.addressof(pointer.contents) + 2 * offset, ctypes.POINTER(ctypes.c_int16)),
                total - offset, ctypes.byref(consumed))
            offset += consumed.value
            if output.size:
                slices.append(np.ctypeslib.as_array(output.values, shape=(output.size,)).copy())
        if not slices:
            return np.zeros((0, self.channels), np.uint16)
        return np.stack(slices)

    def reset(self) -> None:
        """Back to the start-up state (what the board does on CLIP_BEGIN)."""
        self._library.FrontendReset(self._state)

    def __del__(self) -> None:
        if hasattr(self, "_state"):
            self._library.FrontendFreeStateContents(self._state)


def to_float(raw: np.ndarray) -> np.ndarray:
    """Raw uint16 microfrontend output as the float features the model trains on."""
    return raw.astype(np.float32) * np.float32(FLOAT_SCALE)


class ClipFeatures:
    """Raw features of whole clips, each from a freshly reset front end (as training and CLIP_BEGIN do)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._frontend = Frontend(config.frontend, config.audio.sample_rate)

    def raw(self, clip: np.ndarray) -> np.ndarray:
        """uint16 features of one clip, shape (num_slices, channels)."""
        self._frontend.reset()
        features = self._frontend.process(clip)
        if len(features) != self.config.num_slices:
            raise ValueError(f"a clip of {len(clip)} samples gave {len(features)} slices, expected "
                             f"{self.config.num_slices} (clips must be {self.config.clip_samples} samples)")
        return features

    def raw_batch(self, clips: Iterable[np.ndarray], count: int, label: str) -> np.ndarray:
        """uint16 features of `count` clips, shape (count, num_slices, channels), with progress under `label`."""
        from kws.progress import Progress

        out = np.zeros((count, self.config.num_slices, self.config.frontend.channels), np.uint16)
        with Progress(count, label, unit="clips") as progress:
            for i, clip in enumerate(clips):
                out[i] = self.raw(clip)
                progress.update()
        return out

    def float(self, clip: np.ndarray) -> np.ndarray:
        """The model's float input for one clip, shape (num_slices, channels)."""
        return to_float(self.raw(clip))


@dataclass(frozen=True)
class Int8Scaling:
    """raw uint16 -> int8 model input: zero_point + round(raw * multiplier / 2**shift), clamped.

    The exact integer mapping the firmware applies (kws_scale_features), derived from the model's input scale.
    """

    multiplier: int
    shift: int
    zero_point: int

    @classmethod
    def from_quantization(cls, scale: float, zero_point: int, shift: int = 20) -> Int8Scaling:
        # int8 = round(raw * FLOAT_SCALE / scale) + zp; raw <= 65535 and multiplier < 2**31 keep the product in int64
        multiplier = round(FLOAT_SCALE / scale * (1 << shift))
        if not 0 < multiplier < 1 << 31:
            raise ValueError(f"input scale {scale} gives a feature multiplier out of range")
        return cls(multiplier, shift, zero_point)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Scales with the firmware's own C code."""
        from kws import core

        return core.scale_features(raw, self.multiplier, self.shift, self.zero_point)
