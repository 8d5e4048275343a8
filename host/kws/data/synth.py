"""Synthetic speech with espeak-ng or Flite, laid out like Speech Commands so the same readers and splits apply.

Each (voice, variant) pair is one synthetic speaker: `espeak-<voice>+<variant>` for espeak-ng (formant synthesis,
many accents and languages), `flite-<voice>+vt<warp>` for Flite (English voices built from recordings of real
speakers, closer to a microphone than espeak-ng). A speaker's renderings of a word at the different speeds and
pitches are its takes: `<out_dir>/<word>/<speaker>_nohash_<k>.wav`. Because the speaker-hash split keys on the
part before `_nohash_`, one synthetic voice never appears in two splits.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.common.progress import Progress
from kws.data.audio import float_to_int16, read_audio, resample, write_wav
from kws.data.clips import Clip

# The 25 auxiliary words of Speech Commands v0.02, its 10 commands (yes, no, up, down, left, right, on, off, stop,
# go), then common short words: `unknown_words` takes them in this order, less the config's keywords. Homophones of
# the commands and digits ("know", "write", "too", "won", "for", "of") are left out on purpose: a sound labelled
# both as a keyword and as `unknown` is label noise.
UNKNOWN_WORDS_EN: tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy", "house",
    "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "visual", "wow", "zero",
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "apple", "baby", "ball", "big", "black", "blue", "book", "box", "car", "chair", "city", "cold", "day",
    "door", "fish", "friend", "green", "hand", "hello", "home", "hot", "little", "money", "music", "never",
    "night", "paper", "people", "please", "red", "road", "school", "small", "table", "thanks", "time", "today",
    "water", "what", "where", "white", "why", "window", "world", "yellow",
)  # fmt: skip

# The native English accents of espeak-ng 1.51 (its MBROLA voices need mbrola, which Debian does not ship).
ENGLISH_VOICES = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
# Plain male and female variants; the novelty ones (whisper, croak, robots) do not sound like a microphone user.
DEFAULT_VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4")
DEFAULT_SPEEDS = (130, 160, 190)  # words per minute; espeak-ng's default is 175
DEFAULT_PITCHES = (35, 65)  # 0-99; espeak-ng's default is 50

ESPEAK_RATE = 22050  # what espeak-ng writes with -w

# Flite 2.2's built-in voices with 16 kHz output (kal is its 8 kHz diphone voice, awb_time a talking clock).
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
# Vocal-tract warps: playing a rendering at warp x its rate scales every formant and the pitch by the warp, as a
# shorter or longer vocal tract would (Jaitly & Hinton 2013, VTLP); each warp of a voice is one more speaker.
FLITE_WARPS = (0.88, 0.94, 1.0, 1.06, 1.12)
FLITE_STRETCHES = (0.8, 0.95, 1.1, 1.3)  # Flite's duration_stretch: its takes, from fast to slow speech
FLITE_RATE = 16000
_INSTALL_HINT = "install it with `sudo apt-get install espeak-ng flite`"
# Trimming keeps everything louder than this fraction of the peak (espeak-ng's pauses are near digital silence).
_TRIM_FRACTION = 0.02
# Peak level of a rendered word, drawn uniformly in dBFS: quiet to nearly full scale, like real recordings.
_PEAK_DBFS = (-20.0, -1.0)


class SynthError(RuntimeError):
    """espeak-ng is missing, a voice or variant is unknown, or a rendering failed."""


@dataclass(frozen=True)
class _Job:
    word: str
    speaker: str
    command: tuple[str, ...]  # the engine's command line; "{out}" stands for the WAV file it writes
    rate: int  # the sample rate the engine writes
    path: Path
    warp: float = 1.0  # the rendering is played back at warp x its rate


def unknown_words(keywords: Sequence[str], count: int, listed: Sequence[str] = UNKNOWN_WORDS_EN) -> list[str]:
    """The first `count` words of `listed` that are not keywords: the non-keyword words `kws data synth` renders."""
    return [word for word in listed if word not in keywords][:count]


def synthesize(
    words: Sequence[str],
    out_dir: Path,
    *,
    language: str = "en",
    voices: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    speeds: Sequence[int] = DEFAULT_SPEEDS,
    pitches: Sequence[int] = DEFAULT_PITCHES,
    sample_rate: int = 16000,
    clip_samples: int = 16000,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> list[Clip]:
    """Renders every word with every voice, variant, speed and pitch; returns the clips sorted by path.

    Voices default to the 8 English accents for "en" and to `language` itself otherwise; variants default to
    `DEFAULT_VARIANTS`. Files that already exist are kept, not rendered again (a file is named by its take
    number, so render with other speeds or pitches into a fresh `out_dir`). The output depends only on the
    arguments and `seed`, never on `workers`. `split` is "train" in the returned clips: the speaker-hash
    rule (kws.data.speech_commands.which_set) or the config decides the real split.
    """
    binary = _espeak_binary()
    voices = list(voices) if voices is not None else list(ENGLISH_VOICES if language == "en" else [language])
    variants = list(variants) if variants is not None else list(DEFAULT_VARIANTS)
    _check_words(words)
    _check_names("voice", voices, list_voices(language), f"espeak-ng --voices={language}")
    _check_names("variant", variants, _list_variants(binary), "espeak-ng --voices=variant")

    jobs = []
    for word in words:
        for voice, variant in itertools.product(voices, variants):
            speaker = f"espeak-{voice}+{variant}"
            for take, (speed, pitch) in enumerate(itertools.product(speeds, pitches)):
                command = (
                    binary,
                    "-v",
                    f"{voice}+{variant}",
                    "-s",
                    str(speed),
                    "-p",
                    str(pitch),
                    "-w",
                    "{out}",
                    word,
                )
                path = Path(out_dir) / word / f"{speaker}_nohash_{take}.wav"
                jobs.append(_Job(word, speaker, command, ESPEAK_RATE, path))
    return _render_all(jobs, sample_rate, clip_samples, seed, workers, progress)


def synthesize_flite(
    words: Sequence[str],
    out_dir: Path,
    *,
    voices: Sequence[str] = FLITE_VOICES,
    warps: Sequence[float] = FLITE_WARPS,
    stretches: Sequence[float] = FLITE_STRETCHES,
    sample_rate: int = 16000,
    clip_samples: int = 16000,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> list[Clip]:
    """Renders every English word with every Flite voice, vocal-tract warp and duration stretch (as `synthesize`)."""
    binary = shutil.which("flite")
    if binary is None:
        raise SynthError(f"flite is not installed (not found on PATH); {_INSTALL_HINT}")
    _check_words(words)
    _check_names("voice", voices, _flite_voices(binary), "flite -lv")
    jobs = []
    for word in words:
        for voice, warp in itertools.product(voices, warps):
            speaker = f"flite-{voice}+vt{round(warp * 100):03d}"
            for take, stretch in enumerate(stretches):
                command = (
                    binary,
                    "-voice",
                    voice,
                    "--setf",
                    f"duration_stretch={stretch}",
                    "-t",
                    word,
                    "-o",
                    "{out}",
                )
                path = Path(out_dir) / word / f"{speaker}_nohash_{take}.wav"
                jobs.append(_Job(word, speaker, command, FLITE_RATE, path, warp))
    return _render_all(jobs, sample_rate, clip_samples, seed, workers, progress)


def _render_all(
    jobs: list[_Job], sample_rate: int, clip_samples: int, seed: int, workers: int, progress: bool
) -> list[Clip]:
    todo = [job for job in jobs if not job.path.exists()]
    with (
        tempfile.TemporaryDirectory(prefix="kws-synth-") as scratch,
        Progress(len(todo), "synthesizing", unit="clips", enabled=progress) as bar,
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        # Threads suffice: the time goes into the engine processes and NumPy/SciPy, not Python code.
        def render(numbered: tuple[int, _Job]) -> None:
            number, job = numbered
            _render(job, Path(scratch) / f"{number}.wav", sample_rate, clip_samples, seed)

        try:
            for _ in pool.map(render, enumerate(todo)):
                bar.update()
        except BaseException:
            # Fail fast (and on Ctrl-C) instead of rendering the rest of the queue first.
            pool.shutdown(cancel_futures=True)
            raise
    return sorted(
        (Clip(job.path, job.word, job.speaker, "train") for job in jobs), key=lambda clip: clip.path
    )


def list_voices(language: str) -> list[str]:
    """The espeak-ng voices (language codes usable with -v) for `language`, without MBROLA voices."""
    voices = []
    for fields in _voice_table(_espeak_binary(), language):
        if fields["language"] != "variant" and not fields["file"].startswith("mb/"):
            voices.append(fields["language"])
    return list(dict.fromkeys(voices))


def _render(job: _Job, scratch: Path, sample_rate: int, clip_samples: int, seed: int) -> None:
    command = [str(scratch) if part == "{out}" else part for part in job.command]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SynthError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    speech = read_audio(scratch, job.rate).astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(speech) > _TRIM_FRACTION * np.max(np.abs(speech), initial=0.0))
    if loud.size == 0:
        raise SynthError(f"{' '.join(command)} produced silence")
    speech = resample(speech[loud[0] : loud[-1] + 1], round(job.rate * job.warp), sample_rate)

    # Seeded by the file's identity, not by its position in the work queue, so any number of workers (and
    # skipping existing files) gives the same bytes.
    identity = hashlib.sha256(f"{job.word}/{job.path.name}".encode()).digest()
    rng = np.random.default_rng([seed, int.from_bytes(identity[:8], "little")])
    peak = 10.0 ** (rng.uniform(*_PEAK_DBFS) / 20.0)
    speech *= peak / np.max(np.abs(speech))
    clip = np.zeros(clip_samples)
    if len(speech) >= clip_samples:
        # Keep the middle: the onset and the tail are the quietest parts of a word.
        start = (len(speech) - clip_samples) // 2
        clip[:] = speech[start : start + clip_samples]
    else:
        offset = int(rng.integers(0, clip_samples - len(speech) + 1))
        clip[offset : offset + len(speech)] = speech

    job.path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so an interrupted run never leaves a truncated file to be skipped.
    partial = job.path.with_name(job.path.name + ".partial")
    write_wav(partial, float_to_int16(clip), sample_rate)
    partial.replace(job.path)


def _espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SynthError(f"espeak-ng is not installed (not found on PATH); {_INSTALL_HINT}")
    return binary


def _voice_table(binary: str, language: str) -> list[dict[str, str]]:
    """Rows of `espeak-ng --voices=<language>`: language, voice name and file (which may contain spaces)."""
    listing = subprocess.run(
        [binary, f"--voices={language}"], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in listing.splitlines()[1:]:
        # Pty, Language, Age/Gender, VoiceName, File (contains a "/", may contain spaces), (Other Languages)
        match = re.match(r"\s*\d+\s+(\S+)\s+\S+\s+(\S+)\s+(\S*/[^(]*?)\s*(\(.*)?$", line)
        if match:
            rows.append({"language": match.group(1), "name": match.group(2), "file": match.group(3)})
    return rows


def _flite_voices(binary: str) -> list[str]:
    listing = subprocess.run([binary, "-lv"], capture_output=True, text=True, check=True).stdout
    return listing.split(":", 1)[-1].split()


def _list_variants(binary: str) -> list[str]:
    # A variant is named by its file name after "!v/", e.g. "f2" for "+f2".
    return [row["file"].split("/", 1)[1] for row in _voice_table(binary, "variant")]


def _check_names(kind: str, names: Sequence[str], known: list[str], listing: str) -> None:
    # `listing` is the command that lists the known names; its first word names the engine.
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SynthError(
            f"unknown {listing.split()[0]} {kind}{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known: {', '.join(known) or 'none'} (see `{listing}`)"
        )


def _check_words(words: Sequence[str]) -> None:
    # A word becomes a folder name and an espeak-ng argument: no path separators, no leading "-" (an option).
    for word in words:
        if not word.strip() or "/" in word or word.startswith("-") or word.startswith("."):
            raise SynthError(
                f"cannot synthesize {word!r}: need a non-empty word without '/', not starting with '-' or '.'"
            )
