"""Audio input and output: everything the pipeline reads or writes as audio goes through here.

Reads PCM WAV and, through `soundfile` (libsndfile), FLAC, OGG (Vorbis, Opus), MP3 and NIST SPHERE: the formats
datasets such as Common Voice, MSWC and the CMU/LDC corpora (AN4, TIMIT) come in (`SUFFIXES`; `audio_files` finds
them in a folder). Writes WAV.

Reading converts what can be converted without guessing (other sample rates, stereo, 8/24/32-bit PCM) and refuses
the rest with an error that names the file and the reason. Nothing is dropped silently: callers that skip a bad
file count it (see `kws.data.dataset`).

WAV is read with the standard library's `wave`, not libsndfile: libsndfile reads a WAV cut short without a word (a
16000-frame file cut in half read as 7989 frames, measured with soundfile 0.14.0 / libsndfile 1.2.2), where the
header's own frame count lets `wave` name it truncated. The other formats are checked the same way: fewer frames
decoded than the header promises is a truncated file.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

# The file names (any case) that are audio; all but WAV are decoded by libsndfile (SPHERE: uncompressed PCM only,
# what libsndfile reads; shorten-compressed SPHERE files are refused by name).
LIBSNDFILE_SUFFIXES = (".flac", ".ogg", ".opus", ".mp3", ".sph")
SUFFIXES = (".wav", *LIBSNDFILE_SUFFIXES)


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and why."""


def audio_files(folder: str | Path, pattern: str = "**/*") -> list[Path]:
    """The audio files (`SUFFIXES`, any case) under `folder` whose path matches the glob `pattern`, sorted:
    `"*/*"` for `<word>/<clip>` folders, the default for everything below."""
    return sorted(path for path in Path(folder).glob(pattern) if path.suffix.lower() in SUFFIXES and path.is_file())


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Reads an audio file as mono int16 at `sample_rate`, resampling and down-mixing when needed."""
    samples, rate = read_pcm(path)
    if rate != sample_rate:
        samples = resample(samples, rate, sample_rate)
    return float_to_int16(samples)


def read_audio_or_skip(path: str | Path, sample_rate: int, skipped: list[str]) -> np.ndarray | None:
    """`read_audio`, or None for a file that cannot be used, whose error (naming it and why) is added to `skipped`: the
    one bad-file rule of every reader, so that a bad file is named and counted, never fatal and never padded."""
    try:
        return read_audio(path, sample_rate)
    except AudioError as error:
        skipped.append(str(error))
        return None


def read_pcm(path: str | Path) -> tuple[np.ndarray, int]:
    """An audio file as mono float samples at its own rate (and the rate): the whole check of a file, without
    converting it."""
    path = Path(path)
    if path.suffix.lower() in LIBSNDFILE_SUFFIXES:
        return _decode(path)
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            promised = wav.getnframes()
            frames = wav.readframes(promised)
    except (EOFError, wave.Error, OSError) as error:
        raise _unreadable(path, error) from None
    _check_length(path, len(frames), promised, width, channels)
    return _pcm_to_float(frames, width, path).reshape(-1, channels).mean(axis=1), rate


def check_audio(path: str | Path) -> None:
    """Raises the AudioError `read_pcm` would for a file whose header or length is wrong, from the header and the
    file's size alone: cheap enough for every file of a dataset, where reading them all would not be. A compressed
    file's length is only known by decoding it: its header is checked here, its length when it is read."""
    path = Path(path)
    if path.suffix.lower() in LIBSNDFILE_SUFFIXES:
        _decode(path, header_only=True)
        return
    try:
        with path.open("rb") as handle, wave.open(handle, "rb") as wav:
            channels, width, promised = wav.getnchannels(), wav.getsampwidth(), wav.getnframes()
            held = path.stat().st_size - handle.tell()  # wave.open stops right behind the data chunk's header
    except (EOFError, wave.Error, OSError) as error:
        raise _unreadable(path, error) from None
    _check_length(path, min(held, promised * width * channels), promised, width, channels)
    _pcm_to_float(b"", width, path)  # the sample width: what read_pcm would refuse


def _decode(path: Path, header_only: bool = False) -> tuple[np.ndarray, int]:
    """A file libsndfile decodes (`LIBSNDFILE_SUFFIXES`), as `read_pcm` returns it; refuses a file with no audio
    frames or fewer than its header promises (cut short)."""
    import soundfile

    kind = path.suffix[1:].upper()
    try:
        with path.open("rb") as handle, soundfile.SoundFile(handle) as sound:
            promised, rate = sound.frames, sound.samplerate
            samples = np.zeros((0, sound.channels)) if header_only else sound.read(dtype="float64", always_2d=True)
    except soundfile.LibsndfileError as error:
        reason = error.error_string.removeprefix("Error : ").rstrip(".")
        if "not a regular file" in reason:  # what libsndfile 1.2.2 says of an MP3 with no frame in it (it was opened)
            reason = "no audio frame found in it"
        raise AudioError(f"{path}: not a readable {kind} file ({reason})") from None
    except (soundfile.SoundFileError, OSError) as error:
        raise _unreadable(path, error) from None
    if promised <= 0:
        raise AudioError(f"{path}: no audio frames (an empty {kind} file, or one cut short)")
    if not header_only and len(samples) < promised:
        raise AudioError(f"{path}: truncated data (the header promises {promised} frames, the file holds "
                         f"{len(samples)})")
    return samples.mean(axis=1), rate


def _unreadable(path: Path, error: Exception) -> AudioError:
    if isinstance(error, EOFError):
        return AudioError(f"{path}: not a readable PCM WAV file (it ends inside its header)")
    if isinstance(error, wave.Error):
        return AudioError(f"{path}: not a readable PCM WAV file ({error or 'bad header'})")
    reason = getattr(error, "strerror", None) or error or type(error).__name__
    return AudioError(f"{path}: cannot be read ({reason})")


def _check_length(path: Path, data_bytes: int, promised: int, width: int, channels: int) -> None:
    if data_bytes % (width * channels):
        raise AudioError(f"{path}: truncated data ({data_bytes} bytes is not a whole number of frames)")
    if data_bytes < promised * width * channels:
        raise AudioError(f"{path}: truncated data (the header promises {promised} frames, the file holds "
                         f"{data_bytes // (width * channels)})")


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Writes mono int16 samples as a 16-bit PCM WAV."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise TypeError(f"write_wav expects int16 samples, got {samples.dtype}")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (float in, float out), exact ratio of the two rates."""
    from math import gcd

    from scipy.signal import resample_poly

    divisor = gcd(rate_in, rate_out)
    return resample_poly(samples, rate_out // divisor, rate_in // divisor)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16, clipping rather than wrapping around."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Pads with zeros at the end or crops the end so a clip has exactly `length` samples."""
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))


def _pcm_to_float(frames: bytes, width: int, path: Path) -> np.ndarray:
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(frames, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(frames, "<i2").astype(np.float64) / 32768.0
    if width == 3:
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        values = raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8) | (raw[:, 2].astype(np.int32) << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float64) / float(1 << 23)
    if width == 4:
        return np.frombuffer(frames, "<i4").astype(np.float64) / float(1 << 31)
    raise AudioError(f"{path}: unsupported sample width of {width} bytes")
