"""Streaming evaluation: streams (`kws.evaluation.stream_build`) scored stride by stride as the board scores them,
then the firmware's recognizer replayed over the recorded scores for any setting.

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

import numpy as np

from kws.board import core
from kws.board.pipeline import StreamingPipeline
from kws.common.progress import Progress
from kws.config import Config
from kws.evaluation.evaluate import ModelDir
from kws.evaluation.stream_build import NON_KEYWORD_STREAM, Stream

TOLERANCE_MS = 1500


# A window's time span (start_ms, end_ms) of stream time -> uint8 scores, one per label in model output order.
Scorer = Callable[[int, int], np.ndarray]


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
