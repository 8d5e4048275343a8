"""The listening check a new user makes: keywords spoken one after another, a second of silence apart, played to the
board; how many does it report, and how many wrongly.

`sequence` draws `per_keyword` clips of each keyword from different speakers, in a seeded random order, and lays them
out as audio with the slot each word owns (from its start to the next word's start). `score` matches the board's
DET lines to the slots: a slot's first detection counts right if it names the slot's keyword; every other
detection (a wrong label, a second detection of one word) counts wrong. `run_on_board` plays the sequence through
`kws stream` to a serial port, so the whole host-stream path and the firmware's recognizer are what is checked.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.data import audio
from kws.data import dataset as data

SILENCE_S = 1.0


@dataclass(frozen=True)
class Sequence:
    samples: np.ndarray  # int16
    words: list[str]  # the keyword of each slot, in order
    slots_ms: list[tuple[int, int]]  # [start, end) of each slot in stream time
    speakers: list[str]


def sequence(config: Config, clips: data.Clips, per_keyword: int, seed: int) -> Sequence:
    """`per_keyword` clips of every keyword, each from another speaker where the clips allow, shuffled; a second of
    silence before each word and after the last."""
    rng = np.random.default_rng(seed)
    chosen = []
    for keyword in config.keywords.words:
        target = config.labels.index(keyword)
        indices = [int(i) for i in rng.permutation(np.flatnonzero(clips.targets == target))]
        if len(indices) < per_keyword:
            raise ValueError(f"only {len(indices)} clips of '{keyword}' in {', '.join(clips.sources)}; "
                             f"the check needs {per_keyword}")
        by_speaker: dict[str, int] = {}
        for i in indices:
            by_speaker.setdefault(data.speaker_of(clips.paths[i]), i)
        picked = list(by_speaker.values())[:per_keyword]
        picked += [i for i in indices if i not in picked][: per_keyword - len(picked)]
        chosen += [(keyword, i) for i in picked]
    order = rng.permutation(len(chosen))
    rate = config.audio.sample_rate
    silence = np.zeros(round(SILENCE_S * rate), np.int16)
    pieces, slots, words, speakers = [silence], [], [], []
    position = len(silence)
    for k in order:
        keyword, i = chosen[k]
        clip = clips.audio[i]
        start_ms = position * 1000 // rate
        pieces += [clip, silence]
        position += len(clip) + len(silence)
        slots.append((start_ms, position * 1000 // rate))
        words.append(keyword)
        speakers.append(data.speaker_of(clips.paths[i]))
    return Sequence(np.concatenate(pieces), words, slots, speakers)


@dataclass(frozen=True)
class Score:
    keywords: int
    correct: int
    wrong: int
    missed: list[str]  # keywords of the slots with no right detection
    wrong_detections: list[tuple[str, str]]  # (the slot's keyword, the label the board reported)


def score(seq: Sequence, detections: list[tuple[int, str]]) -> Score:
    """Matches (t_ms, label) detections to the sequence's slots."""
    first: dict[int, str] = {}
    wrong: list[tuple[str, str]] = []
    for t_ms, label in sorted(detections):
        slot = next((k for k, (start, end) in enumerate(seq.slots_ms) if start <= t_ms < end), None)
        heard = "(before the first word)" if slot is None else seq.words[slot]
        if slot is not None and slot not in first and label == heard:
            first[slot] = label
        else:
            wrong.append((heard, label))
    missed = [word for k, word in enumerate(seq.words) if k not in first]
    return Score(len(seq.words), len(first), len(wrong), missed, wrong)


def run_on_board(port: str, seq: Sequence, sample_rate: int) -> list[tuple[int, str]]:
    """Plays the sequence through `kws stream --fast` and returns the board's detections as (t_ms, label), t_ms in
    the stream's time (the board's DET time counts from the stream's start, as the sequence's slots do)."""
    from kws.device import stream

    with tempfile.TemporaryDirectory(prefix="kws-check-") as folder:
        wav = Path(folder) / "sequence.wav"
        audio.write_wav(wav, seq.samples, sample_rate)
        printed = io.StringIO()
        stream.run(port, [str(wav)], use_mic=False, fast=True, out=printed)
    return [detection for detection in map(stream.parse_detection_line, printed.getvalue().splitlines())
            if detection is not None]
