"""The calibration fit: one threshold per keyword, the averaging window, the suppression and the minimum count fitted
on calibration streams for a false-accepts-per-hour target, to be checked on held-out streams built from other clips
(`kws calibrate` itself, which builds the streams, replays the fits on the held-out ones, writes the setting and
prints the summary, is `kws.evaluation.calibrate_run`).

Entry points: `other_words`, `split_halves` and `half_streams` (what the streams are built from), `fit`,
`keyword_curves` (each keyword's threshold curve, for the report).

The clips (`data.select_clips`, validation speakers by default) and the `--other-words` folders are cut in two:
by speaker when every keyword is spoken in both halves (a speaker's clips all land in one half, by a hash of the
name), else clip by clip. One half builds the calibration streams, the other the held-out streams: a keyword stream
and a non-keyword stream (unknown words, other words, background noise) each. The model runs once over every stream
(`streaming.model_trace`); everything after is a replay of the firmware's recognizer (C) over the recorded scores.

The fit, for each averaging window x minimum count x suppression of the grid:
1. One pass of the recognizer gives the top label and its average at every inference (`core.Recognizer.tops`: the
   averages do not depend on thresholds or suppression).
2. For each keyword alone and each threshold, rule 6 on those tops gives its detections: the keyword's errors on
   the keyword stream (misses, and detections that hit nothing: another keyword heard as it, or a repeat) and its
   false accepts on the non-keyword stream.
3. Thresholds for all keywords together: for a range of prices of a false accept in errors (a Lagrangian sweep),
   each keyword takes the threshold with the fewest errors + price x false accepts (ties: the higher threshold).
   Keywords interact only a little (one keyword's detection re-arms another), so the candidates whose summed false
   accepts meet the target are replayed jointly through the C recognizer, and the first that really meets it (and
   keeps the median detection delay within `recognizer.median_delay_ms`) is this grid point's setting.
The setting with the fewest keyword-stream errors per keyword spoken that meets the target and the delay wins
(ties: fewer false accepts, the shorter window, then the higher thresholds); if none meets both, one that meets the
target; if none meets it, the one with the fewest false accepts per hour. Non-keyword
labels (silence, unknown) keep the config's `threshold`: it only decides when they re-arm a keyword.

The same fit is run for 1 and 5 FA/h besides the target, and every fitted setting is replayed on the held-out streams:
the result shows the calibration and the held-out figures side by side, so a fit that only learned the calibration
clips shows as a gap. Per keyword: false-reject rate and detection delay (from the end of the word); false accepts by
what caused them; the median delay and the false-reject rate of the best setting at each averaging window (what the
window costs in delay).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.board import core
from kws.config import Config
from kws.data import audio
from kws.data import dataset as data
from kws.evaluation import stream_build, streaming

# Per keyword. 255 (never: an average is at most 255) is not offered: a fit that silences a keyword to meet the
# false-accept target makes a spotter that cannot hear it, which is worse than missing the target and saying so.
THRESHOLDS = tuple(range(40, 251, 10))
# Short windows matter: a word fills the 1 s model window for only a few hundred ms of inferences, so a long
# average dilutes its scores with the windows that hold half of it.
AVERAGE_WINDOWS_MS = (250, 350, 500, 750, 1000)
SUPPRESSIONS_MS = (1000, 1500, 2000)
# In a continuous stream the window always holds average_window_ms / period results: the minimum count decides only
# how soon after a reset (start-up, input change) the recognizer may speak, and a count the window cannot hold
# would silence it (those grid points are skipped, and so are windows shorter than the inference period).
MINIMUM_COUNTS = (1, 3)
PRICES = (0.0, *np.geomspace(0.02, 500, 60).tolist(), 1e9)  # misses per false accept, the Lagrangian sweep
JOINT_TRIES = 6  # candidates replayed jointly per grid point before giving up on meeting the target


# ---- the two halves ----

@dataclass
class Half:
    """The clips one set of streams is built from: keywords and non-keywords, with the word each one says."""

    audio: list[np.ndarray]
    targets: list[int]  # label index; -1: a word outside the model's classes (an --other-words folder)
    words: list[str]
    speakers: set[str]


def _in_first_half(speaker: str) -> bool:
    return int(hashlib.sha1(f"nano-kws-calibrate:{speaker}".encode()).hexdigest(), 16) % 2 == 0


def other_word_splits(split: str) -> tuple[str, ...]:
    """The speaker splits whose other words a scoring split plays as unseen non-keyword speech: never the training
    speakers (`kws train --unlabeled` learns from exactly those), unless the training split itself is scored."""
    return data.SPLIT_CHOICES[split] if split == "train" else tuple(
        name for name in data.SPLIT_CHOICES[split] if name != "train")


def other_words(config: Config, folders: list[str], skipped: list[str],
                splits: tuple[str, ...] | None = None) -> list[tuple[np.ndarray, str, str]]:
    """(clip, word, speaker) of every audio file in `<folder>/<word>/`: non-keyword speech for the non-keyword streams.
    A folder named like a keyword or starting with '_' is left out; unreadable files are named in `skipped`.
    `splits`: only speakers whom the config's speaker split (`data.speaker_split`, as for any folder dataset) puts
    in these, so that a scoring split never hears a speaker the model may have trained on (the same speaker IDs
    recur across Speech Commands releases)."""
    clips = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise data.DataError(f"--other-words {folder}: not a folder")
        found = 0
        for word_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if word_dir.name.startswith("_") or word_dir.name in config.keywords.words:
                continue
            for path in audio.audio_files(word_dir, "*"):
                if splits is not None and data.speaker_split(data.speaker_of(path), config.split) not in splits:
                    continue
                recording = audio.read_audio_or_skip(path, config.audio.sample_rate, skipped)
                if recording is None:
                    continue
                clips.append((audio.fit_length(recording, config.clip_samples), word_dir.name, data.speaker_of(path)))
                found += 1
        if not found:
            raise data.DataError(f"--other-words {folder}: no <word>/<clip> audio files of non-keywords"
                                 + (f" of {'/'.join(splits)} speakers" if splits is not None else "") + " in it")
    return clips


def split_halves(config: Config, clips: data.Clips, others: list[tuple[np.ndarray, str, str]]
                 ) -> tuple[Half, Half, str]:
    """(calibration half, held-out half, "speakers" or "clips"): the keyword and unknown clips and the other words
    cut by speaker when every keyword is spoken in both halves, else clip by clip (alternately within each word)."""
    labels = config.labels
    keyword_ids = {i for i, label in enumerate(labels) if label in config.keywords.words}
    usable = [i for i, t in enumerate(clips.targets) if t in keyword_ids or labels[t] == "unknown"]
    items = [(clips.audio[i], int(clips.targets[i]), *stream_build.word_and_speaker(clips.paths[i])) for i in usable]
    items += [(clip, -1, word, speaker) for clip, word, speaker in others]
    by_speaker = [_in_first_half(speaker) for *_, speaker in items]
    spoken = [{target for (_, target, _, _), first in zip(items, by_speaker, strict=True) if first == side}
              for side in (True, False)]
    if all(keyword_ids <= side for side in spoken):
        first, how = by_speaker, "speakers"
    else:
        seen: dict[str, int] = {}
        first = []
        for _, _, word, _ in items:
            seen[word] = seen.get(word, 0) + 1
            first.append(seen[word] % 2 == 1)
        how = "clips"
    halves = []
    for side in (True, False):
        chosen = [item for item, flag in zip(items, first, strict=True) if flag == side]
        halves.append(Half([c for c, *_ in chosen], [t for _, t, _, _ in chosen], [w for _, _, w, _ in chosen],
                           {s for *_, s in chosen}))
    return halves[0], halves[1], how


def half_streams(config: Config, half: Half, noise: list[np.ndarray], minutes: float, snr_db: float | None,
                 seed: int) -> list[stream_build.Stream]:
    """A keyword stream and a non-keyword stream of `minutes` each from one half, at the keyword clips' SNR."""
    return stream_build.keyword_streams(config, half.audio, half.targets, noise, minutes, snr_db, seed, half.words)


# ---- the fit ----

class _Matcher:
    """`streaming.match`'s hit rule for one keyword's detections, without re-counting the events each time."""

    def __init__(self, stream: stream_build.Stream, tolerance_ms: int = streaming.TOLERANCE_MS) -> None:
        self.starts = np.array([e.start_ms for e in stream.events], np.int64)
        self.ends = [e.end_ms + tolerance_ms for e in stream.events]
        self.labels = [e.label for e in stream.events]

    def hits(self, label: int, times: list[int]) -> int:
        hit: set[int] = set()
        for time_ms in times:
            i, earliest = int(np.searchsorted(self.starts, time_ms, side="right")) - 1, None
            while i >= 0 and time_ms <= self.ends[i]:
                if self.labels[i] == label and i not in hit:
                    earliest = i
                i -= 1
            if earliest is not None:
                hit.add(earliest)
        return len(hit)


def _single_label_times(times: np.ndarray, top: np.ndarray, score: np.ndarray, label: int, threshold: int,
                        suppression_ms: int) -> list[int]:
    """Rule 6 for one label alone: its detection times when no other label ever becomes a new command."""
    candidates = times[(top == label) & (score > threshold)].tolist()
    detections, last = [], None
    for time_ms in candidates:
        if last is None or time_ms - last > suppression_ms:
            detections.append(time_ms)
            last = time_ms
    return detections


@dataclass
class Fitted:
    setting: streaming.Setting
    keyword: streaming.Outcome
    non_keyword: streaming.Outcome
    met_target: bool
    slow: bool  # median detection delay over recognizer.median_delay_ms

    @property
    def keyword_errors(self) -> float:
        """Misses and detections that hit nothing (wrong keyword, repeat) per keyword spoken, on the keyword streams."""
        return (self.keyword.keywords - self.keyword.hits + self.keyword.false_accept_count) / max(1, self.keyword.keywords)

    @property
    def key(self) -> tuple:
        """Better is smaller: meets the target, within the delay, fewer keyword errors (misses, wrong keywords,
        repeats), fewer false accepts, shorter window, higher thresholds."""
        thresholds = self.setting.thresholds or ()
        errors = round(self.keyword_errors, 6)
        return (not self.met_target, self.slow, errors if self.met_target else 0.0,
                round(self.non_keyword.fa_per_hour, 6), errors, self.setting.average_window_ms, -sum(thresholds))


def _inserted(streams: list[stream_build.Stream], keyword_ids: list[int]) -> dict[int, int]:
    """How often each keyword was spoken in the keyword streams."""
    return {k: sum(1 for s in streams if s.name == stream_build.KEYWORD_STREAM for e in s.events if e.label == k)
            for k in keyword_ids}


def _curves(streams: list[stream_build.Stream], traces: list[streaming.Trace], config: Config, window: int,
            minimum_count: int, suppressions: tuple[int, ...], matchers: list[_Matcher]) -> dict[int, tuple]:
    """suppression -> (misses, false accepts, extra detections), each (keywords x THRESHOLDS), for every keyword
    alone: its misses and its detections that hit nothing on the keyword streams (another keyword heard as it, or
    a repeat), and its false accepts on the non-keyword streams."""
    labels = config.labels
    keyword_ids = [i for i, label in enumerate(labels) if label in config.keywords.words]
    reportable = [i in keyword_ids for i in range(len(labels))]
    tops = [core.Recognizer(len(labels), reportable, window, 255, 0, minimum_count, [255] * len(labels))
            .tops(trace.times_ms, trace.scores) for trace in traces]
    inserted = _inserted(streams, keyword_ids)
    result = {}
    for suppression in suppressions:
        misses = np.zeros((len(keyword_ids), len(THRESHOLDS)), np.int64)
        false_accepts = np.zeros_like(misses)
        extra = np.zeros_like(misses)
        for row, k in enumerate(keyword_ids):
            for column, threshold in enumerate(THRESHOLDS):
                hits = 0
                for stream, trace, (top, score), matcher in zip(streams, traces, tops, matchers, strict=True):
                    times = _single_label_times(trace.times_ms, top, score, k, threshold, suppression)
                    if stream.name == stream_build.NON_KEYWORD_STREAM:
                        false_accepts[row, column] += len(times)
                    else:
                        hit = matcher.hits(k, times)
                        hits += hit
                        extra[row, column] += len(times) - hit
                misses[row, column] = inserted[k] - hits
        result[suppression] = (misses, false_accepts, extra)
    return result


def keyword_curves(streams: list[stream_build.Stream], traces: list[streaming.Trace], config: Config,
                   setting: streaming.Setting) -> dict[str, list[dict]]:
    """A DET curve per keyword at the setting's window, suppression and minimum count: each keyword alone over
    THRESHOLDS, its false-reject rate on the keyword streams and the false accepts per hour it alone causes on the
    non-keyword streams."""
    keyword_ids = [i for i, label in enumerate(config.labels) if label in config.keywords.words]
    matchers = [_Matcher(stream) for stream in streams]
    misses, false_accepts, _ = _curves(streams, traces, config, setting.average_window_ms, setting.minimum_count,
                                       (setting.suppression_ms,), matchers)[setting.suppression_ms]
    hours = sum(s.hours for s in streams if s.name == stream_build.NON_KEYWORD_STREAM)
    inserted = _inserted(streams, keyword_ids)
    return {config.labels[k]: [{"threshold": t, "frr": round(int(misses[row, column]) / inserted[k], 4)
                                if inserted[k] else None,
                                "fa_per_hour": round(int(false_accepts[row, column]) / hours, 3) if hours else None}
                               for column, t in enumerate(THRESHOLDS)]
            for row, k in enumerate(keyword_ids)}


def _candidates(misses: np.ndarray, false_accepts: np.ndarray, budget: float,
                spread: int | None = None) -> list[tuple[int, ...]]:
    """Per-keyword threshold columns from the Lagrangian sweep whose summed false accepts fit `budget`, fewest
    summed misses first; if none fits, the one with the fewest false accepts. `spread`: every keyword's threshold
    within that many grid steps of a shared one (0: one threshold for all; None: free)."""
    found = {}
    count = len(THRESHOLDS)
    ranges = [(0, count - 1)] if spread is None else [(max(0, c - spread), min(count - 1, c + spread))
                                                      for c in range(count)]
    for low, high in ranges:
        order = np.arange(low, high + 1)[::-1]  # ties go to the higher threshold
        for price in PRICES:
            cost = (misses + price * false_accepts)[:, order]
            columns = tuple(int(order[j]) for j in np.argmin(cost, axis=1))
            rows = range(len(columns))
            found[columns] = (sum(misses[r, c] for r, c in zip(rows, columns, strict=True)),
                              sum(false_accepts[r, c] for r, c in zip(rows, columns, strict=True)))
    ranked = sorted(found, key=lambda c: (found[c][0], found[c][1]))
    fitting = [c for c in ranked if found[c][1] <= budget]
    return fitting or [min(found, key=lambda c: (found[c][1], found[c][0]))]


def fit(streams: list[stream_build.Stream], traces: list[streaming.Trace], config: Config,
        targets: tuple[float, ...], spread: int | None = None
        ) -> tuple[dict[float, Fitted], dict[float, dict[int, Fitted]], int]:
    """For each target: the best setting over the grid, and the best at each averaging window; and how many grid
    points were searched. `spread`: as `_candidates` (scripts/calibration_spread.py compares them held out)."""
    labels = config.labels
    keyword_ids = [i for i, label in enumerate(labels) if label in config.keywords.words]
    hours = sum(s.hours for s in streams if s.name == stream_build.NON_KEYWORD_STREAM)
    period_ms = config.frontend.stride_ms * config.recognizer.inference_every_strides
    matchers = [_Matcher(stream) for stream in streams]
    spoken = _inserted(streams, keyword_ids)
    replayed: dict[streaming.Setting, tuple[streaming.Outcome, streaming.Outcome]] = {}  # targets share candidates
    best: dict[float, Fitted] = {}
    per_window: dict[float, dict[int, Fitted]] = {target: {} for target in targets}
    points = 0
    for window in AVERAGE_WINDOWS_MS:
        if window < period_ms:
            # The window holds one result at a time: its span is 0, under rule 3's window / 4, so the recognizer
            # never averages and never speaks (a "setting" with no false accepts and no detections).
            continue
        for minimum_count in MINIMUM_COUNTS:
            if minimum_count > window // period_ms + 1:
                continue  # the window never holds that many results: the recognizer would never speak
            curves = _curves(streams, traces, config, window, minimum_count, SUPPRESSIONS_MS, matchers)
            for suppression, (misses, false_accepts, extra) in curves.items():
                points += 1
                for target in targets:
                    fitted = None
                    # A keyword heard where another was said, or twice, is an error the user sees as much as a
                    # miss: both count against a threshold (the listening check counts them as wrong).
                    for columns in _candidates(misses + extra, false_accepts, target * hours,
                                               spread)[:JOINT_TRIES]:
                        thresholds = [config.recognizer.threshold] * len(labels)
                        for k, column in zip(keyword_ids, columns, strict=True):
                            # A keyword the calibration streams never say has nothing to fit: it keeps the default.
                            thresholds[k] = THRESHOLDS[column] if spoken[k] else config.recognizer.threshold
                        setting = streaming.Setting(config.recognizer.threshold, window, suppression, minimum_count,
                                                    tuple(thresholds))
                        if setting not in replayed:
                            replayed[setting] = streaming.operating_point(streams, traces, config, setting)
                        keyword, non_keyword = replayed[setting]
                        slow = bool(keyword.delays_ms) and (float(np.median(keyword.delays_ms))
                                                            > config.recognizer.median_delay_ms)
                        candidate = Fitted(setting, keyword, non_keyword, non_keyword.fa_per_hour <= target, slow)
                        if fitted is None or candidate.key < fitted.key:
                            fitted = candidate
                        if candidate.met_target and not slow:
                            break
                    if target not in best or fitted.key < best[target].key:
                        best[target] = fitted
                    if window not in per_window[target] or fitted.key < per_window[target][window].key:
                        per_window[target][window] = fitted
    return best, per_window, points
