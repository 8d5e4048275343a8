"""The MLPerf Tiny KWS MFCC front end in integer C (firmware/lib/kws_core/kws_mfcc.c), from Python.

The board computes the MLPerf reference model's features (`kws.frontends.teacher_mfcc.mlperf_mfcc`, TensorFlow) with this integer
code; training calls the very same C through ctypes (`mfcc_clip`, `mfcc_batch`), so host and board agree byte for
byte. The C has no constants of its own: `MfccTables.build` computes them here from the front end's parameters in
numpy float64 and rounds them to integers (periodic Hann window, FFT twiddles, the sparse mel weights per FFT bin,
the DCT matrix, a log2 table, and the shifts that keep full-scale input from overflowing), and `c_arrays` gives them
with their C types for the firmware's generated header.

Output: MFCCs in Q16 (`Q`), (frames, coefficients), oldest frame first; `mfcc_clip` divides by 2**16, which is what
training feeds the model. Differences from TensorFlow's reference (documented in kws_mfcc.h): the peak is taken over
the samples the 49 frames cover ([0, 15840) of a clip, not all 16,000), and a clip whose maximum is <= 0 is
normalized by 1 LSB, i.e. left unscaled in int16 units, which is what `mlperf_mfcc` does with int16 input.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from kws.board import core

Q = 16  # fractional bits of the C output (KWS_MFCC_Q)
WINDOW_Q = 30  # a Q15 window would leave a leakage floor 96 dB below the peak, which pure tones reach
TWIDDLE_Q = 30
MEL_WEIGHT_Q = 15
TABLE_Q = 30  # DCT and log2 table
LOG_OFFSET_Q = 50
MAX_MEL = 64  # KWS_MFCC_MAX_MEL
MAX_FFT = 4096  # KWS_MFCC_MAX_FFT
_S_LIMIT = 2**30  # largest sum |windowed samples| an FFT frame may reach (kws_mfcc.c: int32 with a factor 2 spare)


@dataclass(frozen=True)
class MfccParams:
    """The front end's parameters; the defaults are MLPerf Tiny KWS's (`get_dataset.py`, feature_type "mfcc")."""

    sample_rate: int = 16000
    window: int = 480  # samples per frame (30 ms)
    stride: int = 320  # samples between frames (20 ms)
    fft_length: int = 512
    mel_bins: int = 40
    lower_hz: float = 20.0
    upper_hz: float = 4000.0
    coefficients: int = 10
    clip_samples: int = 16000
    log_offset: float = 1e-6  # log(mel + log_offset)
    log2_bits: int = 8  # log2 table of 2**bits + 1 entries

    @property
    def frames(self) -> int:
        """Frames of one clip: the window's length in frames (49 for MLPerf)."""
        return 1 + (self.clip_samples - self.window) // self.stride

    def storage_words(self, frames: int) -> int:
        """int32 words of state the C needs for a ring of `frames` frames (KWS_MFCC_STORAGE_WORDS in kws_mfcc.h)."""
        return self.window + self.fft_length + frames * (self.mel_bins + 2)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def mel_weight_matrix(params: MfccParams) -> np.ndarray:
    """tf.signal.linear_to_mel_weight_matrix in float64, (fft_length/2 + 1, mel_bins): HTK mel, triangles in mel
    space, the DC bin's row zero (TensorFlow ignores it)."""
    bins = params.fft_length // 2 + 1
    mel = _hz_to_mel(np.linspace(0.0, params.sample_rate / 2.0, bins)[1:])[:, None]
    edges = np.linspace(_hz_to_mel(params.lower_hz), _hz_to_mel(params.upper_hz), params.mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((mel - lower) / (center - lower), (upper - mel) / (upper - center)))
    return np.vstack([np.zeros((1, params.mel_bins)), weights])


def _q(values: np.ndarray, bits: int, dtype: type[np.integer]) -> np.ndarray:
    scaled = np.round(np.asarray(values, np.float64) * 2.0**bits)
    info = np.iinfo(dtype)
    if scaled.min() < info.min or scaled.max() > info.max:
        raise ValueError(f"table values out of the {np.dtype(dtype).name} range at Q{bits}")
    return scaled.astype(dtype)


@dataclass(frozen=True)
class CArray:
    """A table as the C code declares it: element type and values."""

    ctype: str
    values: np.ndarray


_CTYPES = {np.dtype(np.uint8): "uint8_t", np.dtype(np.uint16): "uint16_t", np.dtype(np.int32): "int32_t"}


@dataclass(frozen=True)
class MfccTables:
    """Everything the C front end needs, as integers (the fields of `kws_mfcc_tables`, in its order)."""

    params: MfccParams
    first_bin: int
    num_bins: int
    input_shift: int
    mel_shift: int
    log_offset: int
    window: np.ndarray = field(repr=False)  # int32 Q30, periodic Hann
    twiddle: np.ndarray = field(repr=False)  # int32 Q30: cos, sin of 2 pi k / fft_length, k < fft_length / 2
    mel_band: np.ndarray = field(repr=False)  # uint8: per bin, the band of its rising slope (0..mel_bins)
    mel_weight: np.ndarray = field(repr=False)  # uint16 Q15: per bin, falling weight, rising weight
    dct: np.ndarray = field(repr=False)  # int32 Q30: (coefficients, ceil(mel_bins/2)) DCT-II * sqrt(2/mel_bins) * ln 2
    log2_table: np.ndarray = field(repr=False)  # int32 Q30: log2(1 + i / 2**log2_bits)

    @classmethod
    def build(cls, params: MfccParams | None = None) -> MfccTables:
        """The tables for `params` (MLPerf's by default); raises ValueError for parameters the C cannot take."""
        p = params or MfccParams()
        if p.fft_length & (p.fft_length - 1) or not 8 <= p.fft_length <= MAX_FFT:
            raise ValueError(f"fft_length {p.fft_length}: must be a power of two in 8..{MAX_FFT}")
        if not 0 < p.stride <= p.window <= p.fft_length or p.clip_samples < p.window:
            raise ValueError(f"need 0 < stride ({p.stride}) <= window ({p.window}) <= fft_length ({p.fft_length}) "
                             f"and window <= clip_samples ({p.clip_samples})")
        if not 1 <= p.coefficients <= p.mel_bins <= MAX_MEL:
            raise ValueError(f"need 1 <= coefficients ({p.coefficients}) <= mel_bins ({p.mel_bins}) <= {MAX_MEL}")
        if not 1 <= p.log2_bits <= 15:
            raise ValueError(f"log2_bits {p.log2_bits} not in 1..15")
        n = np.arange(p.window, dtype=np.float64)
        window = _q(0.5 - 0.5 * np.cos(2.0 * np.pi * n / p.window), WINDOW_Q, np.int32)
        angle = 2.0 * np.pi * np.arange(p.fft_length // 2) / p.fft_length
        twiddle = _q(np.stack([np.cos(angle), np.sin(angle)], axis=1).ravel(), TWIDDLE_Q, np.int32)
        first_bin, mel_band, mel_weight = _sparse_mel(p)
        j = np.arange((p.mel_bins + 1) // 2, dtype=np.float64)  # the other half mirrors it (kws_mfcc.h)
        k = np.arange(p.coefficients, dtype=np.float64)[:, None]
        dct = np.sqrt(2.0 / p.mel_bins) * np.cos(np.pi * k * (2.0 * j + 1.0) / (2.0 * p.mel_bins)) * np.log(2.0)
        log2_table = _q(np.log2(1.0 + np.arange(2**p.log2_bits + 1) / 2.0**p.log2_bits), TABLE_Q, np.int32)
        # the shifts of kws_mfcc.c's headroom proof: sum |d| <= _S_LIMIT; every band's weighted sum < 2^32
        input_shift = next(s for s in range(31) if int(np.sum(window.astype(np.int64) >> s)) <= _S_LIMIT)
        total = int(np.sum(window.astype(np.int64) >> input_shift))
        band_sums = np.zeros(p.mel_bins + 2, np.int64)
        np.add.at(band_sums, mel_band.astype(np.int64), mel_weight[0::2])
        np.add.at(band_sums, mel_band.astype(np.int64) + 1, mel_weight[1::2])
        largest = int(band_sums[1:-1].max()) * (2 * total + 64)
        mel_shift = next(s for s in range(1, 41) if (largest >> s) + 1 < 2**32)
        log_offset = round(p.log_offset * 2.0**LOG_OFFSET_Q)
        if not 0 < log_offset < 2**32:
            raise ValueError(f"log_offset {p.log_offset} must be in (0, 2^-18)")
        return cls(p, first_bin, len(mel_band), input_shift, mel_shift, log_offset, window, twiddle, mel_band,
                   mel_weight, _q(dct, TABLE_Q, np.int32), log2_table)

    def c_arrays(self) -> dict[str, CArray]:
        """The tables by name with their C element types, e.g. {"window": CArray("int32_t", (480,) values)}."""
        arrays = {name: getattr(self, name) for name in ("window", "twiddle", "mel_band", "mel_weight", "dct",
                                                          "log2_table")}
        return {name: CArray(_CTYPES[values.dtype], values.ravel()) for name, values in arrays.items()}

    def c_scalars(self) -> dict[str, int]:
        """The struct's size fields, in its order."""
        p = self.params
        return {"window_length": p.window, "stride": p.stride, "fft_length": p.fft_length,
                "first_bin": self.first_bin, "num_bins": self.num_bins, "num_mel": p.mel_bins,
                "num_coefficients": p.coefficients, "input_shift": self.input_shift, "mel_shift": self.mel_shift,
                "log2_bits": p.log2_bits, "log_offset": self.log_offset}

    def c_header(self, prefix: str = "KWS_MFCC") -> str:
        """C declarations of the tables (`static const int32_t KWS_MFCC_WINDOW[480] = {...};`, the frame count)
        and `<prefix>_TABLES_INIT`, a brace initializer of a kws_mfcc_tables (valid C and C++)."""
        lines = [f"#define {prefix}_FRAMES {self.params.frames}"]
        for name, array in self.c_arrays().items():
            values = array.values.tolist()
            rows = [", ".join(str(v) for v in values[i:i + 12]) for i in range(0, len(values), 12)]
            lines.append(f"static const {array.ctype} {prefix}_{name.upper()}[{len(values)}] = {{\n    "
                         + ",\n    ".join(rows) + "};")
        scalars = ", ".join(f"{value}u" for value in self.c_scalars().values())
        pointers = ", ".join(f"{prefix}_{name.upper()}" for name in self.c_arrays())
        lines.append(f"#define {prefix}_TABLES_INIT {{{scalars}, {pointers}}}")
        return "\n".join(lines) + "\n"


def _sparse_mel(p: MfccParams) -> tuple[int, np.ndarray, np.ndarray]:
    """The mel matrix per FFT bin: a bin lies between two band centres, so it feeds at most two adjacent bands (the
    falling slope of band b and the rising slope of band b + 1); stored as b + 1 and the two weights."""
    matrix = mel_weight_matrix(p)
    used = np.flatnonzero(matrix.any(axis=1))
    if len(used) == 0:
        raise ValueError(f"no FFT bin falls in {p.lower_hz}-{p.upper_hz} Hz")
    first, last = int(used[0]), int(used[-1])
    center = np.linspace(_hz_to_mel(p.lower_hz), _hz_to_mel(p.upper_hz), p.mel_bins + 2)[1:-1]
    bin_mel = _hz_to_mel(np.arange(first, last + 1) * p.sample_rate / p.fft_length)
    bands = np.searchsorted(center, bin_mel, side="right")  # rising-slope band of each bin, 0..mel_bins
    padded = np.hstack([np.zeros((len(matrix), 1)), matrix, np.zeros((len(matrix), 1))])
    rows = np.arange(first, last + 1)
    falling, rising = padded[rows, bands], padded[rows, bands + 1]
    rebuilt = np.zeros((len(rows), p.mel_bins + 2))
    rebuilt[np.arange(len(rows)), bands] = falling
    rebuilt[np.arange(len(rows)), bands + 1] += rising
    if not np.array_equal(rebuilt[:, 1:-1], matrix[first:last + 1]):
        raise ValueError("a bin feeds mel bands other than the two around it: mel bands narrower than FFT bins?")
    weights = _q(np.stack([falling, rising], axis=1).ravel(), MEL_WEIGHT_Q, np.uint16)
    return first, bands.astype(np.uint8), weights


class _Tables(ctypes.Structure):
    _fields_ = [("window_length", ctypes.c_uint16), ("stride", ctypes.c_uint16), ("fft_length", ctypes.c_uint16),
                ("first_bin", ctypes.c_uint16), ("num_bins", ctypes.c_uint16), ("num_mel", ctypes.c_uint8),
                ("num_coefficients", ctypes.c_uint8), ("input_shift", ctypes.c_uint8),
                ("mel_shift", ctypes.c_uint8), ("log2_bits", ctypes.c_uint8), ("log_offset", ctypes.c_uint32),
                ("window", ctypes.c_void_p), ("twiddle", ctypes.c_void_p), ("mel_band", ctypes.c_void_p),
                ("mel_weight", ctypes.c_void_p), ("dct", ctypes.c_void_p), ("log2_table", ctypes.c_void_p)]


class Mfcc:
    """The streaming C front end, as the board runs it (mirrors `kws.frontends.microfrontend.Frontend`): `process` feeds samples,
    `window` gives the MFCCs of the last `frames` frames, `reset` forgets everything."""

    def __init__(self, tables: MfccTables | None = None, frames: int | None = None) -> None:
        lib = core.library()
        self.tables = tables or default_tables()
        self.frames = frames or self.tables.params.frames
        c_size = core._constant(lib, "kws_py_sizeof_mfcc_tables", ctypes.c_size_t)
        if ctypes.sizeof(_Tables) != c_size:
            raise core.CoreBuildError(f"kws_mfcc_tables is {c_size} bytes in C but {ctypes.sizeof(_Tables)} in "
                                      "kws/frontends/mfcc.py: update the ctypes mirror")
        arrays = self.tables.c_arrays()
        self._arrays = [np.ascontiguousarray(array.values) for array in arrays.values()]  # kept alive for the C
        self._struct = _Tables(*self.tables.c_scalars().values(), *(array.ctypes.data for array in self._arrays))
        p = self.tables.params
        words = p.storage_words(self.frames)
        self._storage = np.zeros(words, np.int32)
        self._state = core._state("mfcc")
        if lib.kws_mfcc_init(self._state, ctypes.byref(self._struct), self.frames, self._storage.ctypes.data,
                             words) != 0:
            raise ValueError(f"kws_mfcc_init rejected the tables of {p}")
        self._out = np.zeros((self.frames, p.coefficients), np.int32)

    def process(self, samples: np.ndarray) -> int:
        """Feeds int16 samples; returns how many frames they completed."""
        values = core._as_dtype(samples, np.int16, "samples")
        return int(core.library().kws_mfcc_add(self._state, values.ctypes.data, values.size))

    def window(self) -> np.ndarray:
        """int32 (frames, coefficients) MFCCs in Q16 of the last `frames` frames, oldest first (all-zero frames
        stand in for those not computed since reset)."""
        core.library().kws_mfcc_window(self._state, self._out.ctypes.data)
        return self._out.copy()

    @property
    def full(self) -> bool:
        """True once `frames` frames were computed since the last reset."""
        return bool(core.library().kws_mfcc_full(self._state))

    def reset(self) -> None:
        """Forgets every sample and frame, as the board does on CLIP_BEGIN."""
        core.library().kws_mfcc_reset(self._state)

    def clip(self, clip: np.ndarray) -> np.ndarray:
        """int32 Q16 MFCCs of one clip from a reset front end; the clip is zero-padded or cut at the end to
        clip_samples, as `mlperf_mfcc` does."""
        values = core._as_dtype(clip, np.int16, "clip")
        n = self.tables.params.clip_samples
        if values.ndim != 1:
            raise ValueError(f"a clip must be 1-D, not of shape {values.shape}")
        if len(values) != n:
            values = np.pad(values[:n], (0, max(0, n - len(values))))
        self.reset()
        self.process(values)
        return self.window()


def c_header_file(tables: MfccTables, guard: str = "KWS_MFCC_TABLES_H_") -> str:
    """A complete header with the tables (what firmware/test/kws_mfcc_tables.h is: `python -m kws.frontends.mfcc`)."""
    return (f"/* Generated by `python -m kws.frontends.mfcc` (kws.frontends.mfcc.c_header_file) from {tables.params}. */\n"
            f"#ifndef {guard}\n#define {guard}\n\n#include \"kws_mfcc.h\"\n\n{tables.c_header()}\n#endif /* {guard} */\n")


@cache
def default_tables() -> MfccTables:
    """MLPerf's tables (built once)."""
    return MfccTables.build()


@cache
def _default() -> Mfcc:
    return Mfcc()


def mfcc_clip(clip: np.ndarray) -> np.ndarray:
    """float32 (49, 10) MLPerf MFCCs of one int16 clip through the C front end: the Q16 values / 2**16, what
    training feeds the model. Float audio must be converted first (`kws.data.audio.float_to_int16`)."""
    return (_default().clip(clip) / np.float32(2**Q)).astype(np.float32)


def iter_mfcc(clips: Iterable[np.ndarray], batch_size: int = 256) -> Iterator[np.ndarray]:
    """`mfcc_clip` over a stream of clips, in float32 (<= batch_size, 49, 10) batches: memory is one batch."""
    front = _default()
    p = front.tables.params
    batch = np.zeros((batch_size, p.frames, p.coefficients), np.float32)
    count = 0
    for clip in clips:
        batch[count] = front.clip(clip) / np.float32(2**Q)
        count += 1
        if count == batch_size:
            yield batch.copy()
            count = 0
    if count:
        yield batch[:count].copy()


def mfcc_batch(clips: Iterable[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """float32 (n, 49, 10) MFCCs of n clips (an (n, samples) array or any iterable of clips)."""
    p = default_tables().params
    return np.concatenate(list(iter_mfcc(clips, batch_size)) or [np.zeros((0, p.frames, p.coefficients), np.float32)])


def quantization_multiplier(scale: float, q_bits: int = Q) -> tuple[int, int]:
    """(multiplier, shift) with multiplier / 2**shift = 1 / (scale * 2**q_bits), multiplier in [2**30, 2**31): maps
    Q16 MFCCs to a model input of that scale with kws_mfcc_quantize."""
    if not scale > 0:
        raise ValueError(f"input scale {scale} must be positive")
    mantissa, exponent = math.frexp(1.0 / (scale * 2.0**q_bits))
    multiplier = round(mantissa * 2**31)
    if multiplier == 2**31:
        multiplier, exponent = 2**30, exponent + 1
    shift = 31 - exponent
    if not 0 <= shift <= 62:
        raise ValueError(f"input scale {scale} needs a shift of {shift}, outside 0..62")
    return multiplier, shift


def quantize(q: np.ndarray, multiplier: int, shift: int, zero_point: int) -> np.ndarray:
    """Q16 MFCCs -> int8 model input through the board's kws_mfcc_quantize (round half up, saturate), any shape."""
    values = core._as_dtype(q, np.int32, "MFCCs")
    out = np.empty(values.shape, np.int8)
    if core.library().kws_mfcc_quantize(values.ctypes.data, out.ctypes.data, values.size, multiplier, shift,
                                        zero_point) != 0:
        raise ValueError(f"bad quantization: multiplier {multiplier} (must be >= 0), shift {shift} (0..62)")
    return out


if __name__ == "__main__":
    sys.stdout.write(c_header_file(default_tables()))
