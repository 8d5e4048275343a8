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
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from kws.common.quiet import native_stderr_silenced
from kws.config import Config
from kws.config_schema import Frontend as FrontendParams

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


# The public state structs of tensorflow/lite/experimental/microfrontend/lib/*.h, mirrored from the pinned TFLM
# Arduino library's headers (TensorFlow's op library is built from the same sources and ships no headers): the
# exporter reads the integer tables FrontendPopulateState computed on the host from them (`Frontend.tables`).
class _WindowState(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("coefficients", ctypes.POINTER(ctypes.c_int16)),
                ("step", ctypes.c_size_t), ("input", ctypes.POINTER(ctypes.c_int16)),
                ("input_used", ctypes.c_size_t), ("output", ctypes.POINTER(ctypes.c_int16)),
                ("max_abs_output_value", ctypes.c_int16)]


class _FftState(ctypes.Structure):
    _fields_ = [("input", ctypes.POINTER(ctypes.c_int16)), ("output", ctypes.c_void_p), ("fft_size", ctypes.c_size_t),
                ("input_size", ctypes.c_size_t), ("scratch", ctypes.c_void_p), ("scratch_size", ctypes.c_size_t)]


class _FilterbankState(ctypes.Structure):
    _fields_ = [("num_channels", ctypes.c_int), ("start_index", ctypes.c_int), ("end_index", ctypes.c_int),
                ("channel_frequency_starts", ctypes.POINTER(ctypes.c_int16)),
                ("channel_weight_starts", ctypes.POINTER(ctypes.c_int16)),
                ("channel_widths", ctypes.POINTER(ctypes.c_int16)), ("weights", ctypes.POINTER(ctypes.c_int16)),
                ("unweights", ctypes.POINTER(ctypes.c_int16)), ("work", ctypes.POINTER(ctypes.c_uint64))]


class _NoiseReductionState(ctypes.Structure):
    _fields_ = [("smoothing_bits", ctypes.c_int), ("even_smoothing", ctypes.c_uint16),
                ("odd_smoothing", ctypes.c_uint16), ("min_signal_remaining", ctypes.c_uint16),
                ("num_channels", ctypes.c_int), ("estimate", ctypes.POINTER(ctypes.c_uint32))]


class _PcanGainControlState(ctypes.Structure):
    _fields_ = [("enable_pcan", ctypes.c_int), ("noise_estimate", ctypes.POINTER(ctypes.c_uint32)),
                ("num_channels", ctypes.c_int), ("gain_lut", ctypes.POINTER(ctypes.c_int16)),
                ("snr_shift", ctypes.c_int32)]


class _LogScaleState(ctypes.Structure):
    _fields_ = [("enable_log", ctypes.c_int), ("scale_shift", ctypes.c_int)]


class _FrontendState(ctypes.Structure):
    _fields_ = [("window", _WindowState), ("fft", _FftState), ("filterbank", _FilterbankState),
                ("noise_reduction", _NoiseReductionState), ("pcan_gain_control", _PcanGainControlState),
                ("log_scale", _LogScaleState)]


# pcan_gain_control_util.h: kWideDynamicFunctionLUTSize = 4 * kWideDynamicFunctionBits - 3 entries. Of each four
# from entry 2 on, PcanGainControlPopulateState writes three (y0, a1, a2 of one interval) and WideDynamicFunction
# reads only those: the fourth (entries 5, 9, ..., 121) stays uninitialised heap, so the tables hold 0 there.
PCAN_LUT_SIZE = 4 * 32 - 3
PCAN_LUT_UNUSED = slice(5, PCAN_LUT_SIZE, 4)


@dataclass(frozen=True)
class FrontendTables:
    """The integer tables FrontendPopulateState derives from the parameters with float arithmetic: the window, the
    filterbank's channel layout and weights, the noise reduction's factors and the PCAN gain curve. Their rounding
    depends on how that float code is compiled, so the exporter writes the host's (the training features' own) into
    model_settings.h and the board uses them instead of its own (firmware/src/feature_provider.cpp)."""

    window: np.ndarray  # int16 [window samples]
    filterbank_start_index: int
    filterbank_end_index: int
    channel_frequency_starts: np.ndarray  # int16 [channels + 1]
    channel_weight_starts: np.ndarray  # int16 [channels + 1]
    channel_widths: np.ndarray  # int16 [channels + 1]
    weights: np.ndarray  # int16 [weights]
    unweights: np.ndarray  # int16 [weights]
    even_smoothing: int  # noise reduction, 14-bit fixed point
    odd_smoothing: int
    min_signal_remaining: int
    pcan_gain_lut: np.ndarray  # int16 [PCAN_LUT_SIZE], empty without PCAN


def _int16s(pointer: ctypes._Pointer, count: int) -> np.ndarray:
    address = ctypes.cast(pointer, ctypes.c_void_p).value
    if address is None:
        raise FrontendError("the microfrontend state holds a null table")
    return np.ctypeslib.as_array((ctypes.c_int16 * count).from_address(address)).copy()


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
    state = ctypes.POINTER(_FrontendState)
    library.FrontendPopulateState.argtypes = [ctypes.POINTER(_FrontendConfig), state, ctypes.c_int]
    library.FrontendPopulateState.restype = ctypes.c_int
    library.FrontendProcessSamples.argtypes = [state, ctypes.POINTER(ctypes.c_int16), ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.c_size_t)]
    library.FrontendProcessSamples.restype = _FrontendOutput
    library.FrontendReset.argtypes = [state]
    library.FrontendFreeStateContents.argtypes = [state]
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
        self._state = _FrontendState()
        if not self._library.FrontendPopulateState(ctypes.byref(frontend_config(params)), ctypes.byref(self._state),
                                                   sample_rate):
            raise FrontendError(f"the microfrontend rejected the parameters {params}")

    def tables(self) -> FrontendTables:
        """The integer tables this front end computed from its parameters (what model_settings.h carries)."""
        state = self._state
        window, bank, noise, pcan = state.window, state.filterbank, state.noise_reduction, state.pcan_gain_control
        edges = bank.num_channels + 1  # the filterbank keeps one channel more than it outputs
        starts = _int16s(bank.channel_weight_starts, edges)
        widths = _int16s(bank.channel_widths, edges)
        count = int((starts.astype(np.int64) + widths).max())
        lut = _int16s(pcan.gain_lut, PCAN_LUT_SIZE) if pcan.enable_pcan else np.zeros(0, np.int16)
        lut[PCAN_LUT_UNUSED] = 0
        return FrontendTables(_int16s(window.coefficients, window.size), bank.start_index, bank.end_index,
                              _int16s(bank.channel_frequency_starts, edges), starts, widths,
                              _int16s(bank.weights, count), _int16s(bank.unweights, count), noise.even_smoothing,
                              noise.odd_smoothing, noise.min_signal_remaining, lut)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feeds int16 samples; returns the uint16 feature slices they complete, shape (n, channels)."""
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        pointer = samples.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        consumed = ctypes.c_size_t()
        slices = []
        offset, total = 0, len(samples)
        while offset < total:
            output = self._library.FrontendProcessSamples(
                ctypes.byref(self._state), ctypes.cast(ctypes.addressof(pointer.contents) + 2 * offset, ctypes.POINTER(ctypes.c_int16)),
                total - offset, ctypes.byref(consumed))
            offset += consumed.value
            if output.size:
                slices.append(np.ctypeslib.as_array(output.values, shape=(output.size,)).copy())
        if not slices:
            return np.zeros((0, self.channels), np.uint16)
        return np.stack(slices)

    def reset(self) -> None:
        """Back to the start-up state (what the board does on CLIP_BEGIN)."""
        self._library.FrontendReset(ctypes.byref(self._state))

    def __del__(self) -> None:
        if hasattr(self, "_state"):
            self._library.FrontendFreeStateContents(ctypes.byref(self._state))


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
        from kws.board import core

        return core.scale_features(raw, self.multiplier, self.shift, self.zero_point)
