"""Evaluation streams: long recordings with words at known times, built from clips and background noise (scored by
`kws.evaluation.streaming`).

A stream is background noise with one-second clips inserted one after another, separated by random gaps of at least
`min_gap_s` of noise only. Each inserted clip is an `Event` whose span is the voiced part of the clip (10 ms frames
within 25 dB of the loudest one), so detection delay is measured from the end of the word, not of the clip.

The SNR of a stream is that of `data.mix_at_snr` on a one-second training clip: the background's RMS is the median
RMS of the inserted one-second clips minus `snr_db`. Clips keep their recorded level, so a quiet speaker is below it.

`keyword_streams` builds the two streams every evaluation plays: keywords, and non-keyword speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.data import audio
from kws.data.augment import rms, snr_gain
from kws.data.dataset import speaker_of

MIN_GAP_S = 1.5
MAX_GAP_S = 3.0
VOICED_FRAME_MS = 10
VOICED_BELOW_PEAK_DB = 25.0

KEYWORD_STREAM, NON_KEYWORD_STREAM = "keywords", "non-keywords"


@dataclass(frozen=True)
class Event:
    """One inserted clip: its class and the stream time of the word in it."""

    label: int
    start_ms: int
    end_ms: int
    word: str = ""  # what was said (the clip's folder), to name the cause of a false accept
    clip: int = -1  # which of the stream's distinct clips (its pool) this is: a replayed clip is the same evidence


class BackgroundNoise:
    """Noise sources scaled to unit RMS (so a loud recording does not dominate), joined in a random order into one
    loop that starts at a random offset. Only the sources are held: any stretch of the loop, however long the
    stream, is cut from them when asked for."""

    def __init__(self, noise: Sequence[np.ndarray]) -> None:
        self.sources = [(source / rms(source)).astype(np.float32) for source in noise if rms(source) > 0]
        if not self.sources:
            raise ValueError("no background noise with any signal in it")

    def draw(self, rng: np.random.Generator) -> tuple[list[np.ndarray], int]:
        """A loop (the sources in a random order) and its random starting offset."""
        loop = [self.sources[i] for i in rng.permutation(len(self.sources))]
        return loop, int(rng.integers(sum(len(source) for source in loop)))

    @staticmethod
    def take(loop: list[np.ndarray], offset: int, start: int, stop: int) -> np.ndarray:
        """Samples start..stop of the loop played from `offset`, round and round (float32, unit RMS)."""
        length = sum(len(source) for source in loop)
        out = np.empty(stop - start, np.float32)
        filled, position = 0, (offset + start) % length
        bounds = np.cumsum([0] + [len(source) for source in loop])
        while filled < len(out):
            index = int(np.searchsorted(bounds, position, side="right")) - 1
            piece = loop[index][position - bounds[index]:][: len(out) - filled]
            out[filled:filled + len(piece)] = piece
            filled += len(piece)
            position = (position + len(piece)) % length
        return out


class StreamAudio:
    """A stream's int16 audio, rendered a stretch at a time when sliced (`audio[a:b]`), so hours of stream cost the
    memory of their clips and noise, not of the hours: the clips at their positions over the noise loop scaled by
    `gain` (none without background)."""

    def __init__(self, samples: int, placements: list[tuple[int, np.ndarray]], loop: list[np.ndarray] | None,
                 offset: int, gain: float) -> None:
        self.samples, self.placements, self.loop, self.offset = samples, placements, loop, offset
        self.gain = np.float32(gain)
        self._positions = np.array([position for position, _ in placements], np.int64)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(self.samples)
        if step != 1:
            raise ValueError("a stream is read in contiguous stretches")
        track = np.zeros(max(0, stop - start), np.float32)
        # Clips are at most a second long and never overlap: those starting up to a clip before `start` may reach in.
        longest = max((len(clip) for _, clip in self.placements), default=0)
        first = int(np.searchsorted(self._positions, start - longest))
        for position, clip in self.placements[first:int(np.searchsorted(self._positions, stop))]:
            lo, hi = max(start, position), min(stop, position + len(clip))
            if lo < hi:
                track[lo - start:hi - start] += clip[lo - position:hi - position].astype(np.float32) / 32768.0
        if self.loop is not None:
            track += BackgroundNoise.take(self.loop, self.offset, start, stop) * self.gain
        return audio.float_to_int16(track)


@dataclass
class Stream:
    name: str
    audio: StreamAudio | np.ndarray  # int16, sliced a stretch at a time
    sample_rate: int
    events: list[Event]
    snr_db: float | None  # None: no background
    pool: int  # distinct clips the events were drawn from

    @property
    def hours(self) -> float:
        return len(self.audio) / self.sample_rate / 3600


def word_and_speaker(path: Path) -> tuple[str, str]:
    """What a clip file says and who says it: `<word>/<speaker>_...wav`, or in the Speech Commands test-set layout
    `_unknown_/<word>_<speaker>_nohash_<n>.wav`."""
    if path.parent.name == "_unknown_":
        word, _, rest = path.name.partition("_")
        return word, speaker_of(Path(rest))
    return path.parent.name, speaker_of(path)


def voiced_span(clip: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """Start and end (ms) of the word in a clip: the first and last 10 ms frame within 25 dB of the loudest."""
    frame = sample_rate * VOICED_FRAME_MS // 1000
    frames = len(clip) // frame
    if not frames:
        return 0, len(clip) * 1000 // sample_rate
    power = np.mean(np.square(clip[:frames * frame].astype(np.float64).reshape(frames, frame)), axis=1)
    if power.max() <= 0:
        return 0, frames * VOICED_FRAME_MS
    loud = np.flatnonzero(power >= power.max() * 10 ** (-VOICED_BELOW_PEAK_DB / 10))
    return int(loud[0]) * VOICED_FRAME_MS, (int(loud[-1]) + 1) * VOICED_FRAME_MS


def reference_rms(clips: Sequence[np.ndarray]) -> float:
    """The speech level a stream's SNR refers to: the median RMS of its one-second int16 clips, as float audio."""
    return float(np.median([rms(clip.astype(np.float32) / 32768.0) for clip in clips])) if len(clips) else 0.0


def background(noise: Sequence[np.ndarray], samples: int, rng: np.random.Generator) -> np.ndarray:
    """`samples` of background at unit RMS from a fresh random loop of the sources (`BackgroundNoise`)."""
    return background_crop(BackgroundNoise(noise), samples, rng)


def background_crop(noise: BackgroundNoise, samples: int, rng: np.random.Generator) -> np.ndarray:
    """`samples` from the start of a freshly drawn loop of `noise`: one clip's worth of noise to mix with it."""
    loop, offset = noise.draw(rng)
    return BackgroundNoise.take(loop, offset, 0, samples)


def build_stream(name: str, clips: Sequence[np.ndarray], labels: Sequence[int], noise: Sequence[np.ndarray],
                 minutes: float, sample_rate: int, snr_db: float | None, speech_rms: float, rng: np.random.Generator,
                 min_gap_s: float = MIN_GAP_S, max_gap_s: float = MAX_GAP_S,
                 words: Sequence[str] | None = None) -> Stream:
    """`minutes` of background with the clips (int16, one class index each; `words`: what each says, for the
    causes of false accepts) inserted in a shuffled cycle.

    No clips: a stream of background only. The last `max_gap_s` stay free so the last word can still be detected.
    """
    total = round(minutes * 60 * sample_rate)
    placements = []
    events = []
    order: list[int] = []
    position = round(rng.uniform(min_gap_s, max_gap_s) * sample_rate)
    while len(clips):
        if not order:
            order = list(rng.permutation(len(clips)))
        index = order.pop()
        clip = clips[index]
        if position + len(clip) + max_gap_s * sample_rate > total:
            break
        placements.append((position, clip))
        start_ms, end_ms = voiced_span(clip, sample_rate)
        offset_ms = position * 1000 // sample_rate
        events.append(Event(int(labels[index]), offset_ms + start_ms, offset_ms + end_ms,
                            words[index] if words is not None else "", int(index)))
        position += len(clip) + round(rng.uniform(min_gap_s, max_gap_s) * sample_rate)
    loop, offset = BackgroundNoise(noise).draw(rng) if snr_db is not None else (None, 0)
    gain = snr_gain(speech_rms, 1.0, snr_db) if snr_db is not None else 0.0
    return Stream(name, StreamAudio(total, placements, loop, offset, gain), sample_rate, events, snr_db, len(clips))


def keyword_streams(config: Config, clips: Sequence[np.ndarray], targets: Sequence[int], noise: Sequence[np.ndarray],
                    minutes: float, snr_db: float | None, seed: int,
                    words: Sequence[str] | None = None) -> list[Stream]:
    """The two evaluation streams of `minutes` each: keyword clips in background noise, and the non-keyword clips
    (the config's `unknown` ones, and target -1: words outside the model's classes) in the same background (noise
    alone when there are none), both at the keyword clips' SNR. `words`: what each clip says, so that a false
    accept can name its cause."""
    rng = np.random.default_rng(seed)
    labels = config.labels
    keyword = [i for i, t in enumerate(targets) if t >= 0 and labels[t] in config.keywords.words]
    other = [i for i, t in enumerate(targets) if t < 0 or labels[t] == "unknown"]
    if not keyword:
        raise ValueError("no keyword clips to build a stream from")
    speech_rms = reference_rms([clips[i] for i in keyword])
    sr = config.audio.sample_rate
    return [build_stream(name, [clips[i] for i in chosen], [targets[i] for i in chosen], noise, minutes, sr, snr_db,
                         speech_rms, rng, words=None if words is None else [words[i] for i in chosen])
            for name, chosen in ((KEYWORD_STREAM, keyword), (NON_KEYWORD_STREAM, other))]
