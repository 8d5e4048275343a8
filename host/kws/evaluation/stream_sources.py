"""What the evaluation streams are made of, shared by `kws report` and `kws calibrate` (both build streams the same
way): the background noise sources (recordings, or generated noise when none are given), the default stream length
for a false-accept target, and the description of built streams that both write to their JSON."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.common.defaults import minutes_to_resolve
from kws.data import augment
from kws.data import dataset as data
from kws.evaluation import stream_build

NOISE_SEED = 1234


@dataclass
class NoiseSource:
    name: str
    audio: list[np.ndarray]  # float
    origin: str
    unseen: bool


def noise_sources(paths: list[str], unseen: bool, sample_rate: int) -> list[NoiseSource]:
    """One source per argument: a file, or a folder's audio files together."""
    sources = []
    for path in map(Path, paths):
        skipped: list[str] = []
        recordings = data.load_noise([path], sample_rate, skipped)
        if not recordings:
            raise data.DataError(f"{path}: no readable noise ({skipped[0] if skipped else 'no audio files'})")
        sources.append(NoiseSource(path.stem if path.is_file() else path.name, recordings, str(path), unseen))
    return sources


def generated_sources(sample_rate: int) -> list[NoiseSource]:
    noise = augment.generated_noise(sample_rate, np.random.default_rng(NOISE_SEED))
    return [NoiseSource(f"generated {name}", [recording], "kws.data.augment.generated_noise", False)
            for name, recording in zip(("white", "pink", "brown"), noise, strict=True)]


def describe_streams(streams: list[stream_build.Stream], noise: list[NoiseSource]) -> list[dict]:
    return [{"name": s.name, "minutes": round(s.hours * 60, 2), "snr_db": s.snr_db, "events": len(s.events),
             "distinct_clips": s.pool, "background": [source.name for source in noise] if s.snr_db is not None else []}
            for s in streams]


def stream_length(target: float) -> int:
    """The default stream length for a false-accept target, and the line that says why (kws report, calibrate)."""
    minutes = minutes_to_resolve(target)
    print(f"streams of {minutes} min each: the shortest in which no false accept would show the {target:g}/h "
          "target met at 95% (--stream-minutes to choose)", file=sys.stderr)
    return minutes
