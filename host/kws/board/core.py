"""ctypes binding of the firmware's portable C core (firmware/lib/kws_core).

The host runs the board's own code, not a Python re-implementation of it: feature scaling, the recognizer, the frame
decoder and the line builder are the exact C the board runs, so the virtual board and the evaluation tools cannot
drift from the firmware. The shared library is compiled on first use with the system C compiler (`cc`, or $CC) into
a cache keyed by a hash of the sources, so an edit to the C is picked up without a manual build step.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from kws import cache_dir
from kws.common.paths import REPO_ROOT

CORE_DIR = REPO_ROOT / "firmware" / "lib" / "kws_core"
CFLAGS = ["-std=c99", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra"]

# Compiled into the library beside the core: the sizes and limits Python needs, read from the C headers instead of
# copied, so the binding fails loudly if a struct changes.
_INTROSPECTION_C = """\
#include <stddef.h>
#include "kws_core.h"
const size_t kws_py_sizeof_recognizer = sizeof(kws_recognizer);
const size_t kws_py_sizeof_recognizer_config = sizeof(kws_recognizer_config);
const size_t kws_py_sizeof_recognition = sizeof(kws_recognition);
const size_t kws_py_sizeof_frame_decoder = sizeof(kws_frame_decoder);
const size_t kws_py_sizeof_frame = sizeof(kws_frame);
const size_t kws_py_sizeof_line = sizeof(kws_line);
const size_t kws_py_sizeof_mfcc = sizeof(kws_mfcc);
const size_t kws_py_sizeof_mfcc_tables = sizeof(kws_mfcc_tables);
const int kws_py_max_labels = KWS_RECOGNIZER_MAX_LABELS;
const int kws_py_line_max = KWS_LINE_MAX;
const size_t kws_py_sizeof_ble_detection = sizeof(kws_ble_detection);
const size_t kws_py_sizeof_ble_stats = sizeof(kws_ble_stats);
const size_t kws_py_sizeof_ble_counters = sizeof(kws_ble_counters);
const size_t kws_py_sizeof_ble_sequence = sizeof(kws_ble_sequence);
const char* const kws_py_ble_service_uuid = KWS_BLE_SERVICE_UUID;
const char* const kws_py_ble_detection_uuid = KWS_BLE_DETECTION_UUID;
const char* const kws_py_ble_info_uuid = KWS_BLE_INFO_UUID;
const char* const kws_py_ble_stats_uuid = KWS_BLE_STATS_UUID;
const char* const kws_py_ble_name_prefix = KWS_BLE_NAME_PREFIX;
const int kws_py_ble_format = KWS_BLE_FORMAT;
const int kws_py_ble_detection_size = KWS_BLE_DETECTION_SIZE;
const int kws_py_ble_stats_size = KWS_BLE_STATS_SIZE;
const int kws_py_ble_info_max = KWS_BLE_INFO_MAX;
const int kws_py_ble_advertising_interval_ms = KWS_BLE_ADVERTISING_INTERVAL_MS;
const int kws_py_ble_connection_interval_min_ms = KWS_BLE_CONNECTION_INTERVAL_MIN_MS;
const int kws_py_ble_connection_interval_max_ms = KWS_BLE_CONNECTION_INTERVAL_MAX_MS;
"""


class CoreBuildError(RuntimeError):
    """The C core could not be compiled (no compiler, or a compile error: the message has the compiler output)."""


def _sources() -> list[Path]:
    sources = sorted(CORE_DIR.glob("*.[ch]"))
    if not any(path.suffix == ".c" for path in sources):
        raise CoreBuildError(f"no kws_core sources in {CORE_DIR}")
    return sources


def _build(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        glue = Path(tmp) / "kws_py_introspection.c"
        glue.write_text(_INTROSPECTION_C)
        out = Path(tmp) / target.name
        c_files = [str(path) for path in _sources() if path.suffix == ".c"]
        cmd = [compiler, *CFLAGS, f"-I{CORE_DIR}", *c_files, str(glue), "-o", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CoreBuildError(f"building kws_core failed:\n{' '.join(cmd)}\n{result.stderr}")
        os.replace(out, target)  # atomic: a concurrent process sees the whole library or none


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The compiled core, built on first use (cached across processes by source hash)."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise CoreBuildError(f"no C compiler '{compiler}' to build kws_core: install one "
                             "(Debian: apt-get install gcc) or set CC")
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(_INTROSPECTION_C.encode() + " ".join([compiler, *CFLAGS]).encode())
    target = cache_dir("kws_core") / f"libkws_core-{digest.hexdigest()[:16]}.so"
    if not target.exists():
        _build(compiler, target)
    lib = ctypes.CDLL(str(target))
    _declare(lib)
    return lib


class _RecognizerConfig(ctypes.Structure):
    _fields_ = [("average_window_ms", ctypes.c_uint32), ("detection_threshold", ctypes.c_uint8),
                ("suppression_ms", ctypes.c_uint32), ("minimum_count", ctypes.c_uint32)]


class _Recognition(ctypes.Structure):
    _fields_ = [("ready", ctypes.c_int), ("top_index", ctypes.c_int), ("top_score", ctypes.c_uint8),
                ("is_new_command", ctypes.c_int), ("detected", ctypes.c_int)]


class _Frame(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint8), ("seq", ctypes.c_uint16), ("length", ctypes.c_uint16),
                ("payload", ctypes.POINTER(ctypes.c_uint8))]


class _BleDetection(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint16), ("label", ctypes.c_uint8), ("score", ctypes.c_uint8),
                ("t_ms", ctypes.c_uint32), ("fe_us", ctypes.c_uint32), ("inf_us", ctypes.c_uint32),
                ("step_us", ctypes.c_uint32)]


# The STATS line's keys, in kws_ble_stats' order after `mode`.
BLE_STATS_KEYS = ("t_ms", "steps", "fe_us_avg", "fe_us_max", "inf_us_avg", "inf_us_max", "overruns", "bad_frames",
                  "lines_dropped", "free_ram", "ble_notified", "ble_dropped", "ble_connections")


class _BleStats(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_uint8), *((key, ctypes.c_uint32) for key in BLE_STATS_KEYS)]


class _BleCounters(ctypes.Structure):
    _fields_ = [("next_seq", ctypes.c_uint16), ("notified", ctypes.c_uint32), ("dropped", ctypes.c_uint32),
                ("connections", ctypes.c_uint32)]


class _BleSequence(ctypes.Structure):
    _fields_ = [("started", ctypes.c_int), ("next", ctypes.c_uint16), ("missed", ctypes.c_uint32)]


def _constant(lib: ctypes.CDLL, name: str, ctype: type) -> int:
    return ctype.in_dll(lib, name).value


def _declare(lib: ctypes.CDLL) -> None:
    mirrors = ((_RecognizerConfig, "recognizer_config"), (_Recognition, "recognition"), (_Frame, "frame"),
               (_BleDetection, "ble_detection"), (_BleStats, "ble_stats"), (_BleCounters, "ble_counters"),
               (_BleSequence, "ble_sequence"))
    for mirror, name in mirrors:
        c_size = _constant(lib, f"kws_py_sizeof_{name}", ctypes.c_size_t)
        if ctypes.sizeof(mirror) != c_size:
            raise CoreBuildError(f"kws_{name} is {c_size} bytes in C but {ctypes.sizeof(mirror)} in kws/core.py: "
                                 "update the ctypes mirror")
    p, i32, u32, sz = ctypes.c_void_p, ctypes.c_int32, ctypes.c_uint32, ctypes.c_size_t
    signatures = {
        "kws_recognizer_init": (ctypes.c_int, [p, ctypes.POINTER(_RecognizerConfig), ctypes.c_int, p]),
        "kws_recognizer_reset": (None, [p]),
        "kws_recognizer_set_thresholds": (ctypes.c_int, [p, p]),
        "kws_recognizer_process": (ctypes.c_int, [p, u32, p, ctypes.POINTER(_Recognition)]),
        "kws_scores_from_int8": (None, [p, ctypes.c_int, i32, p]),
        "kws_scale_features": (ctypes.c_int, [p, p, sz, i32, i32, i32]),
        "kws_frame_decoder_init": (None, [p]),
        "kws_frame_decode": (ctypes.c_int, [p, p, sz, ctypes.POINTER(sz), ctypes.POINTER(_Frame)]),
        "kws_frame_check_payload": (ctypes.c_int, [ctypes.POINTER(_Frame)]),
        "kws_frame_decoder_idle": (ctypes.c_int, [p, u32, ctypes.c_int]),
        "kws_line_begin": (None, [p, p, sz, ctypes.c_char_p]),
        "kws_line_add_int": (None, [p, ctypes.c_char_p, i32]),
        "kws_line_add_uint": (None, [p, ctypes.c_char_p, u32]),
        "kws_line_add_str": (None, [p, ctypes.c_char_p, ctypes.c_char_p]),
        "kws_line_add_u8_list": (None, [p, ctypes.c_char_p, p, sz]),
        "kws_line_add_str_list": (None, [p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), sz]),
        "kws_line_end": (sz, [p]),
        "kws_line_truncated": (ctypes.c_int, [p]),
        "kws_mfcc_init": (ctypes.c_int, [p, p, sz, p, sz]),
        "kws_mfcc_reset": (None, [p]),
        "kws_mfcc_add": (sz, [p, p, sz]),
        "kws_mfcc_full": (ctypes.c_int, [p]),
        "kws_mfcc_window": (None, [p, p]),
        "kws_mfcc_quantize": (ctypes.c_int, [p, p, sz, i32, i32, i32]),
        "kws_ble_encode_detection": (sz, [ctypes.POINTER(_BleDetection), p, sz]),
        "kws_ble_decode_detection": (ctypes.c_int, [p, sz, u32, ctypes.POINTER(_BleDetection)]),
        "kws_ble_encode_stats": (sz, [ctypes.POINTER(_BleStats), p, sz]),
        "kws_ble_decode_stats": (ctypes.c_int, [p, sz, ctypes.POINTER(_BleStats)]),
        "kws_ble_counters_init": (None, [ctypes.POINTER(_BleCounters)]),
        "kws_ble_next_detection": (sz, [ctypes.POINTER(_BleCounters), ctypes.c_uint8, ctypes.c_uint8, u32, u32, u32,
                                        u32, p, sz]),
        "kws_ble_count_sent": (None, [ctypes.POINTER(_BleCounters), ctypes.c_int]),
        "kws_ble_sequence_init": (None, [ctypes.POINTER(_BleSequence)]),
        "kws_ble_sequence_note": (u32, [ctypes.POINTER(_BleSequence), ctypes.c_uint16]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes


def _state(name: str) -> ctypes.Array:
    """Zeroed, 8-byte aligned storage for an opaque C struct; Python never reads its fields."""
    size = _constant(library(), f"kws_py_sizeof_{name}", ctypes.c_size_t)
    return (ctypes.c_uint64 * ((size + 7) // 8))()


def _as_dtype(values: np.ndarray | Sequence[int], dtype: type[np.integer], what: str) -> np.ndarray:
    """values as a C-contiguous array of dtype; integers out of the dtype's range are an error, not a wrap."""
    array = np.asarray(values)
    if array.dtype != dtype:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{what} must be integers ({np.dtype(dtype).name}), not {array.dtype}")
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(f"{what} out of the {np.dtype(dtype).name} range")
    return np.ascontiguousarray(array, dtype=dtype)


# ---- features ----

def scale_features(raw: np.ndarray, multiplier: int, shift: int, zero_point: int) -> np.ndarray:
    """The microfrontend's uint16 features -> the model's int8 input, exactly as the board does it.

    Any shape, one C call: zero_point + ((raw * multiplier + 2**(shift-1)) >> shift), clamped to int8.
    """
    source = _as_dtype(raw, np.uint16, "raw features")
    out = np.empty(source.shape, dtype=np.int8)
    status = library().kws_scale_features(source.ctypes.data, out.ctypes.data, source.size, multiplier, shift,
                                          zero_point)
    if status != 0:
        raise ValueError(f"bad feature scaling: multiplier {multiplier} (must be >= 0), shift {shift} (0..62)")
    return out


# ---- recognizer ----

def scores_from_int8(output: np.ndarray, zero_point: int) -> np.ndarray:
    """The model's int8 softmax output -> 0..255 scores (q - zero_point, clamped), any shape."""
    source = _as_dtype(output, np.int8, "model output")
    out = np.empty(source.shape, dtype=np.uint8)
    library().kws_scores_from_int8(source.ctypes.data, source.size, zero_point, out.ctypes.data)
    return out


@dataclass(frozen=True)
class Recognition:
    """Everything the recognizer concluded from one result (see kws_recognizer.h for the rules)."""

    ready: bool  # enough history for an average
    top_index: int  # -1 when not ready
    top_score: int  # averaged 0..255
    is_new_command: bool  # for any label, reportable or not
    detected: bool  # a new command of a keyword


@dataclass(frozen=True)
class Detection:
    label_index: int
    score: int
    time_ms: int


class Recognizer:
    """micro_speech's RecognizeCommands (averaging, threshold, suppression) as the board runs it, with one threshold
    per label when `thresholds` is given (num_labels values 0..255; `detection_threshold` is then unused)."""

    def __init__(self, num_labels: int, reportable: Sequence[bool], average_window_ms: int,
                 detection_threshold: int, suppression_ms: int, minimum_count: int,
                 thresholds: Sequence[int] | None = None) -> None:
        lib = library()
        if len(reportable) != num_labels:
            raise ValueError(f"{len(reportable)} reportable flags for {num_labels} labels")
        self.num_labels = num_labels
        self._state = _state("recognizer")
        mask = (ctypes.c_uint8 * max(num_labels, 1))(*(1 if flag else 0 for flag in reportable))
        if not 0 <= detection_threshold <= 255:
            raise ValueError(f"detection_threshold {detection_threshold} is not in 0..255")
        config = _RecognizerConfig(average_window_ms, detection_threshold, suppression_ms, minimum_count)
        if lib.kws_recognizer_init(self._state, ctypes.byref(config), num_labels, mask) != 0:
            max_labels = _constant(lib, "kws_py_max_labels", ctypes.c_int)
            raise ValueError(f"bad recognizer settings: num_labels {num_labels} (1..{max_labels}), "
                             f"average_window_ms {average_window_ms} (> 0), minimum_count {minimum_count}")
        if thresholds is not None:
            values = _as_dtype(list(thresholds), np.uint8, "thresholds")
            if values.shape != (num_labels,):
                raise ValueError(f"{values.size} thresholds for {num_labels} labels")
            lib.kws_recognizer_set_thresholds(self._state, values.ctypes.data)

    def recognize(self, time_ms: int, scores: np.ndarray) -> Recognition:
        """Adds one result (scores 0..255 per label, time in ms, not earlier than the last) and reports."""
        values = _as_dtype(scores, np.uint8, "scores")
        if values.shape != (self.num_labels,):
            raise ValueError(f"scores of shape {values.shape}, expected ({self.num_labels},)")
        result = _Recognition()
        status = library().kws_recognizer_process(self._state, time_ms & 0xFFFFFFFF, values.ctypes.data,
                                                  ctypes.byref(result))
        if status != 0:
            raise ValueError(f"result at {time_ms} ms is earlier than the previous one")
        return Recognition(bool(result.ready), result.top_index, result.top_score, bool(result.is_new_command),
                           bool(result.detected))

    def process(self, time_ms: int, scores: np.ndarray) -> Detection | None:
        """A Detection when this result makes a keyword a new command, else None."""
        result = self.recognize(time_ms, scores)
        return Detection(result.top_index, result.top_score, time_ms) if result.detected else None

    def process_many(self, times_ms: np.ndarray, scores: np.ndarray) -> list[Detection]:
        """`process` over a whole recorded stream of results (n times, n x labels scores), the detections in order.

        The same C calls with the per-call checks hoisted out of the loop: replaying a long stream for each setting
        of a sweep is 4x faster than calling `process` per result.
        """
        values = _as_dtype(scores, np.uint8, "scores")
        stamps = np.asarray(times_ms, np.int64)
        if values.shape != (len(stamps), self.num_labels):
            raise ValueError(f"scores of shape {values.shape}, expected ({len(stamps)}, {self.num_labels})")
        if np.any(np.diff(stamps) < 0):
            raise ValueError("result times must not decrease")
        times = (stamps & 0xFFFFFFFF).tolist()
        process, state, base, row = library().kws_recognizer_process, self._state, values.ctypes.data, self.num_labels
        result = _Recognition()
        pointer = ctypes.byref(result)
        detections = []
        for i, time_ms in enumerate(times):
            process(state, time_ms, base + i * row, pointer)
            if result.detected:
                detections.append(Detection(result.top_index, result.top_score, time_ms))
        return detections

    def tops(self, times_ms: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top label and its average (0..255) after each result of a recorded stream, -1 and 0 where not ready
        (rules 1-5, which no threshold or suppression changes). Calibration applies rule 6 to these for many
        thresholds without replaying the averages; build the recognizer with thresholds of 255 so that no new
        command changes its state."""
        values = _as_dtype(scores, np.uint8, "scores")
        stamps = np.asarray(times_ms, np.int64)
        if values.shape != (len(stamps), self.num_labels) or np.any(np.diff(stamps) < 0):
            raise ValueError("scores must be (results, labels) with result times that do not decrease")
        process, state, base, row = library().kws_recognizer_process, self._state, values.ctypes.data, self.num_labels
        result = _Recognition()
        pointer = ctypes.byref(result)
        top = np.empty(len(stamps), np.int16)
        score = np.empty(len(stamps), np.uint8)
        for i, time_ms in enumerate((stamps & 0xFFFFFFFF).tolist()):
            process(state, time_ms, base + i * row, pointer)
            top[i], score[i] = result.top_index, result.top_score
        return top, score

    def reset(self) -> None:
        """Forgets the history and the previous command, as the board does on CLIP_BEGIN."""
        library().kws_recognizer_reset(self._state)


# ---- frames ----

@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    kind: str  # "crc", "length" or "type": the `code` of the device's ERR line
    seq: int
    type: int


_FRAME_ERRORS = {2: "crc", 3: "length", 4: "type"}
_FRAME_OK, _FRAME_NEED_MORE = 1, 0


class FrameDecoder:
    """The device's frame decoder (kws_frame_decode), fed from Python: the virtual board's receiving side.

    With check_payload (the default, as on the board) a frame whose payload size is wrong for its type becomes a
    FrameError("length"), which is what the board answers with ERR code=length.
    """

    def __init__(self, check_payload: bool = True) -> None:
        self._check_payload = check_payload
        self._state = _state("frame_decoder")
        self.reset()

    def idle(self, now_ms: int, fed: bool) -> bool:
        """kws_frame_decoder_idle: call once per poll of the port, fed telling whether bytes arrived. True when a
        partial frame waited more than 100 ms with the port idle and was rejected (the host cut it off); then
        `feed(b"")` returns what the rescan of its bytes finds."""
        return bool(library().kws_frame_decoder_idle(self._state, now_ms & 0xFFFFFFFF, int(fed)))

    def reset(self) -> None:
        """Forgets any partial frame, as the board does on the host timeout and when the host closes the port."""
        library().kws_frame_decoder_init(self._state)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        lib = library()
        buffer = (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(bytes(data) or b"\0")
        events: list[Frame | FrameError] = []
        offset, used, frame = 0, ctypes.c_size_t(), _Frame()
        while True:
            status = lib.kws_frame_decode(self._state, ctypes.byref(buffer, offset), len(data) - offset,
                                          ctypes.byref(used), ctypes.byref(frame))
            offset += used.value
            if status == _FRAME_NEED_MORE:
                return events
            if status != _FRAME_OK:
                events.append(FrameError(_FRAME_ERRORS[status], frame.seq, frame.type))
            elif self._check_payload and lib.kws_frame_check_payload(ctypes.byref(frame)) != _FRAME_OK:
                events.append(FrameError("length", frame.seq, frame.type))
            else:
                events.append(Frame(frame.type, frame.seq, ctypes.string_at(frame.payload, frame.length)))


# ---- lines ----

def _c_text(text: str) -> bytes:
    """ASCII for C; NUL would end the C string early, so it becomes a byte the builder replaces like any other."""
    return text.encode("ascii", errors="replace").replace(b"\0", b"\x01")


class LineBuilder:
    """The device's line builder (kws_line_*): fields that do not fit are left out and flagged, never cut."""

    def __init__(self, tag: str, capacity: int | None = None) -> None:
        lib = library()
        self._capacity = capacity if capacity is not None else _constant(lib, "kws_py_line_max", ctypes.c_int) + 1
        self._buffer = ctypes.create_string_buffer(max(self._capacity, 1))
        self._state = _state("line")
        lib.kws_line_begin(self._state, self._buffer, self._capacity, _c_text(tag))

    def add_int(self, key: str, value: int) -> LineBuilder:
        """Signed 32-bit values use the C int path, larger unsigned ones (up to 2**32 - 1) the uint path."""
        if -2**31 <= value < 2**31:
            library().kws_line_add_int(self._state, _c_text(key), value)
        elif 0 <= value < 2**32:
            library().kws_line_add_uint(self._state, _c_text(key), value)
        else:
            raise ValueError(f"{key}={value} does not fit 32 bits")
        return self

    def add_str(self, key: str, value: str) -> LineBuilder:
        library().kws_line_add_str(self._state, _c_text(key), _c_text(value))
        return self

    def add_u8_list(self, key: str, values: Iterable[int]) -> LineBuilder:
        array = _as_dtype(list(values), np.uint8, key)
        library().kws_line_add_u8_list(self._state, _c_text(key), array.ctypes.data, array.size)
        return self

    def add_str_list(self, key: str, values: Sequence[str]) -> LineBuilder:
        items = (ctypes.c_char_p * max(len(values), 1))(*(_c_text(value) for value in values))
        library().kws_line_add_str_list(self._state, _c_text(key), items, len(values))
        return self

    @property
    def truncated(self) -> bool:
        return bool(library().kws_line_truncated(self._state))

    def end(self) -> bytes:
        """The finished line with " *HH\\n", or b"" if the tag was invalid or the capacity too small."""
        length = library().kws_line_end(self._state)
        return self._buffer.raw[:length]


def format_line(tag: str, fields: Mapping[str, object], capacity: int | None = None) -> bytes:
    """One device line from a dict, through the C builder: ints, strs, lists of 0..255 ints or lists of strs."""
    builder = LineBuilder(tag, capacity)
    for key, value in fields.items():
        if isinstance(value, str):
            builder.add_str(key, value)
        elif isinstance(value, (int, np.integer)):
            builder.add_int(key, int(value))
        elif isinstance(value, (list, tuple, np.ndarray)) and all(isinstance(item, str) for item in value) \
                and len(value) > 0:
            builder.add_str_list(key, list(value))
        elif isinstance(value, (list, tuple, np.ndarray)):
            builder.add_u8_list(key, value)
        else:
            raise TypeError(f"{key}: cannot format a {type(value).__name__}")
    return builder.end()


# ---- Bluetooth LE values (kws_ble.h) ----

@dataclass(frozen=True)
class BleIds:
    """The GATT service's identifiers and the radio schedule, as kws_ble.h defines them for the firmware."""

    service: str
    detection: str
    info: str
    stats: str
    name_prefix: str
    format: int
    detection_size: int
    stats_size: int
    info_max: int
    advertising_interval_ms: int
    connection_interval_min_ms: int
    connection_interval_max_ms: int


@lru_cache(maxsize=1)
def ble_ids() -> BleIds:
    lib = library()

    def text(name: str) -> str:
        return ctypes.c_char_p.in_dll(lib, f"kws_py_ble_{name}").value.decode()

    def number(name: str) -> int:
        return _constant(lib, f"kws_py_ble_{name}", ctypes.c_int)

    return BleIds(text("service_uuid"), text("detection_uuid"), text("info_uuid"), text("stats_uuid"),
                  text("name_prefix"), number("format"), number("detection_size"), number("stats_size"),
                  number("info_max"), number("advertising_interval_ms"),
                  number("connection_interval_min_ms"), number("connection_interval_max_ms"))


class BleValueError(ValueError):
    """A characteristic value the decoder rejected; `kind` is "length", "format" or "label"."""

    def __init__(self, kind: str, what: str, data: bytes) -> None:
        super().__init__(f"bad {what} value ({kind}): {data.hex(' ') or 'empty'}")
        self.kind = kind


_BLE_ERRORS = {1: "length", 2: "format", 3: "label"}


@dataclass(frozen=True)
class BleDetection:
    seq: int
    label_index: int
    score: int
    t_ms: int
    fe_us: int
    inf_us: int
    step_us: int


def decode_ble_detection(data: bytes, num_labels: int) -> BleDetection:
    """A detection notification, decoded by the C the host shares with the board; BleValueError if malformed."""
    value = _BleDetection()
    status = library().kws_ble_decode_detection(bytes(data), len(data), num_labels, ctypes.byref(value))
    if status:
        raise BleValueError(_BLE_ERRORS[status], "detection", bytes(data))
    return BleDetection(value.seq, value.label, value.score, value.t_ms, value.fe_us, value.inf_us, value.step_us)


def decode_ble_stats(data: bytes) -> dict[str, int | str]:
    """The stats characteristic as the STATS line's fields (and the radio's); BleValueError if malformed."""
    value = _BleStats()
    status = library().kws_ble_decode_stats(bytes(data), len(data), ctypes.byref(value))
    if status:
        raise BleValueError(_BLE_ERRORS[status], "stats", bytes(data))
    fields: dict[str, int | str] = {key: getattr(value, key) for key in BLE_STATS_KEYS}
    if fields["free_ram"] == 0xFFFFFFFF:
        fields["free_ram"] = "na"
    fields["mode"] = "host" if value.mode else "mic"
    return fields


def encode_ble_stats(fields: Mapping[str, object]) -> bytes:
    """The stats characteristic's value from STATS fields plus ble_notified/ble_dropped/ble_connections."""
    value = _BleStats(mode=int(fields["mode"] == "host"))
    for key in BLE_STATS_KEYS:
        setattr(value, key, 0xFFFFFFFF if fields[key] == "na" else int(fields[key]))
    out = ctypes.create_string_buffer(ble_ids().stats_size)
    size = library().kws_ble_encode_stats(ctypes.byref(value), out, len(out))
    return out.raw[:size]


class BleCounters:
    """The board's side: every detection takes a sequence number; it is sent or dropped and counted."""

    def __init__(self) -> None:
        self._state = _BleCounters()
        library().kws_ble_counters_init(ctypes.byref(self._state))

    def next_detection(self, label_index: int, score: int, t_ms: int, fe_us: int, inf_us: int,
                       step_us: int) -> bytes:
        out = ctypes.create_string_buffer(ble_ids().detection_size)
        size = library().kws_ble_next_detection(ctypes.byref(self._state), label_index, score, t_ms & 0xFFFFFFFF,
                                                fe_us, inf_us, step_us, out, len(out))
        return out.raw[:size]

    def count_sent(self, sent: bool) -> None:
        library().kws_ble_count_sent(ctypes.byref(self._state), int(sent))

    def connected(self) -> None:
        self._state.connections += 1

    def fields(self) -> dict[str, int]:
        """ble_notified, ble_dropped, ble_connections: the stats value's radio counters."""
        return {"ble_notified": self._state.notified, "ble_dropped": self._state.dropped,
                "ble_connections": self._state.connections}


class BleSequence:
    """The host's side: gaps in the detections' sequence numbers (notifications the board dropped or lost)."""

    def __init__(self) -> None:
        self._state = _BleSequence()
        library().kws_ble_sequence_init(ctypes.byref(self._state))

    def note(self, seq: int) -> int:
        """How many detections were skipped just before this one."""
        return library().kws_ble_sequence_note(ctypes.byref(self._state), seq)

    @property
    def missed(self) -> int:
        return self._state.missed
