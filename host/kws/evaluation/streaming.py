"""Streaming evaluation: long recordings with words at known times, scored stride by stride as the board scores
them, then the firmware's recognizer replayed over the recorded scores for any setting.

A stream is background noise with one-second clips inserted one after another, separated by random gaps of at least
`min_gap_s` of noise only. Each inserted clip is an `Event` whose span is the voiced part of the clip (10 ms frames
within 25 dB of the loudest one), so detection delay is measured from the end of the word, not of the clip.

The SNR of a stream is that of `data.mix_at_snr` on a one-second training clip: the background's RMS is the median
RMS of the inserted one-second clips minus `snr_db`. Clips keep their recorded level, so a quiet speaker is below it.

Scoring is split in two so the expensive part runs once: a `Trace` holds the model's 0..255 scores at every
inference of the stream (`model_trace`: `pipeline.StreamingPipeline`, the host mirror of the firmware loop; or
`scorer_trace`: any function of the window's time span, which is how tests inject a perfect classifier), and
`replay` runs the firmware's recognizer (`core.Recognizer`, the C code) over a trace with one setting in a fraction
of a second, so threshold sweeps and calibration never re-run the model.

Counting (`match`): a detection is a hit when an event of the same keyword, not yet detected, spans it, from the
word's start to `tolerance_ms` after its end; anything else is a false accept, of one of these kinds: `background`
(no word near), `wrong_label` (another keyword), `unknown_word` (a non-keyword word), `repeat` (the same keyword
detected twice). A keyword never hit is a false reject.

A setting is judged (`operating_point`) by its false-reject rate on the keyword stream and its false accepts per
hour on the non-keyword stream, which holds other speech and noise but no keyword: the false-accept rate of keyword
spotting. The keyword stream's own false accepts (mostly the wrong keyword) are reported beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.board import core
from kws.board.pipeline import StreamingPipeline
from kws.common.progress import Progress
from kws.config import Config
from kws.data import audio
from kws.data.augment import rms, snr_gain
from kws.data.dataset import speaker_of
from kws.evaluation.evaluate import ModelDir

MIN_GAP_S = 1.5
MAX_GAP_S = 3.0
TOLERANCE_MS = 1500
VOICED_FRAME_MS = 10
VOICED_BELOW_PEAK_DB = 25.0

KEYWORD_STREAM, NON_KEYWORD_STREAM = "keywords", "non-keywords"

# A window's time span (start_ms, end_ms) of stream time -> uint8 scores, one per label in model output order.
Scorer = Callable[[int, int], np.ndarray]


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


@dataclass(frozen=True)
class Trace:
    """The model's scores at every inference of one stream."""

    times_ms: np.ndarray  # int64, stream time of each inference
    scores: np.ndarray  # uint8, (inferences, labels)


@dataclass(frozen=True)
class Setting:
    """The recognizer parameters a sweep varies (the rest come from the config)."""

    threshold: int
    average_window_ms: int
    suppression_ms: int
    minimum_count: int
    thresholds: tuple[int, ...] | None = None  # one per label (output order); None: `threshold` for every label

    @classmethod
    def from_config(cls, config: Config) -> Setting:
        rec = config.recognizer
        return cls(rec.threshold, rec.average_window_ms, rec.suppression_ms, rec.minimum_count,
                   config.label_thresholds)

    def label_thresholds(self, labels: int) -> tuple[int, ...]:
        return self.thresholds if self.thresholds is not None else (self.threshold,) * labels


@dataclass
class Outcome:
    """Detections of one or more streams counted against what was inserted."""

    hours: float = 0.0
    keywords: int = 0  # keyword events inserted
    hits: int = 0
    false_accepts: Counter = field(default_factory=Counter)  # by kind
    delays_ms: list[int] = field(default_factory=list)  # detection time minus word end, per hit
    per_label: dict[int, list[int]] = field(default_factory=dict)  # label -> [inserted, hit]
    label_delays: dict[int, list[int]] = field(default_factory=dict)  # label -> delays of its hits
    causes: Counter = field(default_factory=Counter)  # (what was there: a word or "noise", label detected) -> count
    # False accepts per distinct clip that caused them, keyed (stream name, clip); background ones are not here
    clip_false_accepts: Counter = field(default_factory=Counter)
    clips: int = 0  # distinct clips the streams' events were drawn from

    @property
    def false_accept_count(self) -> int:
        return sum(self.false_accepts.values())

    @property
    def fa_per_hour(self) -> float:
        return self.false_accept_count / self.hours if self.hours else float("nan")

    @property
    def frr(self) -> float:
        return 1 - self.hits / self.keywords if self.keywords else float("nan")

    def summary(self, labels: Sequence[str]) -> dict:
        """The counts and rates as JSON-able numbers, with 95% intervals (Wilson for the false-reject rate, exact
        Poisson widened by the clips for false accepts per hour: `fa_per_hour_interval`)."""
        from kws.evaluation.evaluate import wilson_interval

        delays = np.array(self.delays_ms, np.float64)
        misses = self.keywords - self.hits
        return {
            "hours": round(self.hours, 4), "keywords": self.keywords, "detected": self.hits, "missed": misses,
            "frr": round(self.frr, 4) if self.keywords else None,
            "frr_ci95": wilson_interval(misses, self.keywords),
            "false_accepts": self.false_accept_count, "false_accepts_by_kind": dict(sorted(self.false_accepts.items())),
            "fa_per_hour": round(self.fa_per_hour, 3) if self.hours else None,
            "fa_per_hour_ci95": self.fa_per_hour_interval(),
            "false_accept_clips": len(self.clip_false_accepts), "distinct_clips": self.clips,
            "delay_ms": {"median": float(np.median(delays)) if len(delays) else None,
                         "p90": float(np.percentile(delays, 90)) if len(delays) else None, "hits": len(delays)},
            "per_keyword": {labels[label]: {"inserted": inserted, "detected": hit,
                                            "frr": round(1 - hit / inserted, 4) if inserted else None,
                                            **_delays(self.label_delays.get(label, []))}
                            for label, (inserted, hit) in sorted(self.per_label.items())},
            # What was heard as which keyword, most frequent first: "noise" is background with no word near.
            "false_accepts_by_cause": [{"heard": heard, "detected": labels[label], "count": count}
                                       for (heard, label), count in sorted(self.causes.items(),
                                                                           key=lambda item: (-item[1], item[0]))],
        }

    def fa_per_hour_interval(self, resamples: int = 2000) -> list[float] | None:
        """95% interval of false accepts per hour: the exact Poisson interval (which bounds a rate from few events,
        zero included), widened for clusters. A stream replays each clip many times, so false accepts come in
        clusters (one speaker's "wow" heard as "down" at every replay): counted as independent events they would
        give an interval far too narrow for another set of speakers.

        Upper end: the wider of Poisson's and a bootstrap over the distinct clips. Lower end: not the bootstrap's,
        which is 0 whenever three clips or fewer caused the false accepts (a resample leaves all k out with
        probability about e^-k, above 2.5% for k <= 3: 13 false accepts from 3 clips gave 0-192/h), although a
        rate that produced 13 is surely above 0. The exact bound counts the clusters instead: the clips that caused
        false accepts and each background one are the independent events, each worth the false accepts per cluster
        seen. Without clusters (one false accept each) both ends are Poisson's."""
        count = self.false_accept_count
        poisson = poisson_rate_interval(count, self.hours)
        if poisson is None or not self.clip_false_accepts or self.clips < 2:
            return poisson
        per_clip = np.zeros(max(self.clips, len(self.clip_false_accepts)), np.int64)
        per_clip[:len(self.clip_false_accepts)] = list(self.clip_false_accepts.values())
        background = self.false_accepts["background"]
        draws = np.random.default_rng(0).choice(per_clip, size=(resamples, len(per_clip))).sum(axis=1) + background
        high = float(np.percentile(draws, 97.5)) / self.hours
        clusters = len(self.clip_false_accepts) + background
        low = poisson_bounds(clusters)[0] * count / clusters / self.hours
        return [round(min(poisson[0], low), 3), round(max(poisson[1], high), 3)]

    def __add__(self, other: Outcome) -> Outcome:
        per_label = {label: [a + b for a, b in zip(self.per_label.get(label, [0, 0]), other.per_label.get(label, [0, 0]),
                                                   strict=True)]
                     for label in {*self.per_label, *other.per_label}}
        label_delays = {label: self.label_delays.get(label, []) + other.label_delays.get(label, [])
                        for label in {*self.label_delays, *other.label_delays}}
        return Outcome(self.hours + other.hours, self.keywords + other.keywords, self.hits + other.hits,
                       self.false_accepts + other.false_accepts, self.delays_ms + other.delays_ms, per_label,
                       label_delays, self.causes + other.causes, self.clip_false_accepts + other.clip_false_accepts,
                       self.clips + other.clips)


def _delays(delays: Sequence[int]) -> dict:
    """Median and 90th percentile of detection delays (ms after the word's end), None without hits."""
    return {"delay_ms_median": float(np.median(delays)) if len(delays) else None,
            "delay_ms_p90": float(np.percentile(delays, 90)) if len(delays) else None}


def word_and_speaker(path: Path) -> tuple[str, str]:
    """What a clip file says and who says it: `<word>/<speaker>_...wav`, or in the Speech Commands test-set layout
    `_unknown_/<word>_<speaker>_nohash_<n>.wav`."""
    if path.parent.name == "_unknown_":
        word, _, rest = path.name.partition("_")
        return word, speaker_of(Path(rest))
    return path.parent.name, speaker_of(path)


def poisson_bounds(count: int) -> tuple[float, float]:
    """Exact (Garwood) 95% interval of the mean of a Poisson count from one observation of `count`."""
    from scipy.stats import chi2

    low = float(chi2.ppf(0.025, 2 * count)) / 2 if count else 0.0
    return low, float(chi2.ppf(0.975, 2 * count + 2)) / 2


def poisson_rate_interval(count: int, hours: float) -> list[float] | None:
    """Exact (Garwood) 95% interval of an event rate per hour from `count` events in `hours`."""
    if not hours:
        return None
    low, high = poisson_bounds(count)
    return [round(low / hours, 3), round(high / hours, 3)]


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


def inference_times(config: Config, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """When the firmware loop runs the model over a stream of `samples` (end times, ms) and the span each window
    covers (start times, ms): the first slice needs a whole front-end window, the window is full after num_slices
    slices, then the model runs every `inference_every_strides` strides."""
    stride, window, sr = config.stride_samples, config.window_samples, config.audio.sample_rate
    slice_ends = np.arange(window, samples + 1, stride, dtype=np.int64)
    full = slice_ends[config.num_slices - 1:]
    ends = full[::config.recognizer.inference_every_strides]
    span = window + (config.num_slices - 1) * stride
    return ends * 1000 // sr, (ends - span) * 1000 // sr


def scorer_trace(config: Config, stream: Stream, scorer: Scorer) -> Trace:
    """A trace from a scoring function of the window span (tests use one that reads the events)."""
    ends, starts = inference_times(config, len(stream.audio))
    scores = np.array([scorer(int(start), int(end)) for start, end in zip(starts, ends, strict=True)], np.uint8)
    return Trace(ends, scores.reshape(len(ends), len(config.labels)))


def model_trace(model_dir: ModelDir, stream: Stream, backend: str = "litert") -> Trace:
    """The int8 model's scores over the stream from a fresh `pipeline.StreamingPipeline`, stride by stride as on
    the board (front-end state, window and clock continuous over the whole stream), fed a second at a time."""
    pipeline = StreamingPipeline(model_dir, backend)
    second = stream.sample_rate
    times, scores = [], []
    with Progress(-(-len(stream.audio) // second), f"stream {stream.name}", unit="s of audio") as progress:
        for offset in range(0, len(stream.audio), second):
            for step in pipeline.feed(stream.audio[offset:offset + second]):
                times.append(step.time_ms)
                scores.append(step.scores)
            progress.update()
    return Trace(np.asarray(times, np.int64), np.asarray(scores, np.uint8).reshape(len(times), -1))


def replay(trace: Trace, reportable: Sequence[bool], setting: Setting) -> list[core.Detection]:
    """The firmware's recognizer over a recorded trace with one setting."""
    recognizer = core.Recognizer(trace.scores.shape[1], reportable, setting.average_window_ms, setting.threshold,
                                 setting.suppression_ms, setting.minimum_count, setting.thresholds)
    return recognizer.process_many(trace.times_ms, trace.scores)


def match(stream: Stream, detections: Sequence[core.Detection], keyword_labels: set[int],
          tolerance_ms: int = TOLERANCE_MS) -> Outcome:
    """Counts hits, false accepts (by kind) and delays of one stream's detections (rules in the module docstring)."""
    events = stream.events
    starts = np.array([event.start_ms for event in events], np.int64)
    hit = [False] * len(events)
    outcome = Outcome(hours=stream.hours, clips=stream.pool)
    for event in events:
        if event.label in keyword_labels:
            outcome.keywords += 1
            outcome.per_label.setdefault(event.label, [0, 0])[0] += 1
    for detection in detections:
        # Events that started before the detection and whose tolerance window is still open, latest first (events
        # do not overlap, so their ends rise with their starts and the walk back stops at the first closed one).
        near = []
        i = int(np.searchsorted(starts, detection.time_ms, side="right")) - 1
        while i >= 0 and detection.time_ms <= events[i].end_ms + tolerance_ms:
            near.append(i)
            i -= 1
        same = [i for i in near if events[i].label == detection.label_index and events[i].label in keyword_labels]
        fresh = [i for i in same if not hit[i]]
        if fresh:
            i = fresh[-1]  # the earlier word first: the later one may still be detected on its own
            hit[i] = True
            outcome.hits += 1
            outcome.per_label[events[i].label][1] += 1
            outcome.delays_ms.append(detection.time_ms - events[i].end_ms)
            outcome.label_delays.setdefault(events[i].label, []).append(detection.time_ms - events[i].end_ms)
            continue
        if same:
            outcome.false_accepts["repeat"] += 1
        elif any(events[i].label in keyword_labels for i in near):
            outcome.false_accepts["wrong_label"] += 1
        elif near:
            outcome.false_accepts["unknown_word"] += 1
        else:
            outcome.false_accepts["background"] += 1
        # The keyword near (wrong label, repeat), else the latest word near (unknown word), else the noise.
        cause = next((events[i] for i in near if events[i].label in keyword_labels), events[near[0]]) if near else None
        heard = "noise" if cause is None else (cause.word or f"label {cause.label}")
        outcome.causes[(heard, detection.label_index)] += 1
        if cause is not None:
            outcome.clip_false_accepts[(stream.name, cause.clip)] += 1
    return outcome


def operating_point(streams: Sequence[Stream], traces: Sequence[Trace], config: Config, setting: Setting,
                    tolerance_ms: int = TOLERANCE_MS) -> tuple[Outcome, Outcome]:
    """One setting judged as keyword spotting is: (keyword streams, non-keyword streams). The false-reject rate comes
    from the keyword streams, the false accepts per hour from the non-keyword streams (other speech and noise), so a
    detection of the wrong keyword counts as a miss there, not as a false accept of non-keyword audio."""
    def pick(negative: bool) -> tuple[list[Stream], list[Trace]]:
        chosen = [(s, t) for s, t in zip(streams, traces, strict=True) if (s.name == NON_KEYWORD_STREAM) == negative]
        return [s for s, _ in chosen], [t for _, t in chosen]

    return (evaluate(*pick(False), config, setting, tolerance_ms), evaluate(*pick(True), config, setting, tolerance_ms))


def operating_summary(keyword: Outcome, non_keyword: Outcome, labels: Sequence[str]) -> dict:
    """`operating_point`'s two outcomes as one summary: the keyword counts, FRR and delays of the keyword streams,
    the hours, false accepts and FA/h of the non-keyword streams, and the keyword streams' own false accepts (wrong
    keyword, repeats) per keyword spoken."""
    summary = keyword.summary(labels)
    negative = non_keyword.summary(labels)
    own_causes = summary["false_accepts_by_cause"]
    for key in ("hours", "false_accepts", "false_accepts_by_kind", "fa_per_hour", "fa_per_hour_ci95",
                "false_accepts_by_cause", "false_accept_clips", "distinct_clips"):
        summary[key] = negative[key]
    summary["keyword_stream_false_accepts"] = {
        "count": keyword.false_accept_count, "by_kind": dict(sorted(keyword.false_accepts.items())),
        "by_cause": own_causes,
        "per_keyword": round(keyword.false_accept_count / keyword.keywords, 4) if keyword.keywords else None}
    return summary


def evaluate(streams: Sequence[Stream], traces: Sequence[Trace], config: Config, setting: Setting,
             tolerance_ms: int = TOLERANCE_MS) -> Outcome:
    """One recognizer setting over every stream, counted together."""
    reportable = [label in config.keywords.words for label in config.labels]
    keywords = {i for i, flag in enumerate(reportable) if flag}
    total = Outcome()
    for stream, trace in zip(streams, traces, strict=True):
        total = total + match(stream, replay(trace, reportable, setting), keywords, tolerance_ms)
    return total
