"""`kws calibrate`: builds the calibration and held-out streams and the model's scores over them
(`build_streams`), fits the recognizer on the calibration half (`kws.evaluation.calibrate.fit`), replays every fitted
setting on the held-out half, writes the chosen one and prints the summary (`run`, `summary_text`).

Written: the KWS_RECOGNIZER_* lines of model_settings.h (KWS_RECOGNIZER_THRESHOLDS per label, _CALIBRATED 1; every
other byte unchanged; a header from before per-keyword thresholds is upgraded in place), the [recognizer] and
[recognizer.thresholds] tables of the folder's config.toml (so the virtual board and every host tool use the same
values), and a `recognizer` section of model_card.json with what was measured.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws import config as config_module
from kws.common.defaults import SPREAD, ZERO_EVENT_BOUND, minutes_to_resolve
from kws.data import dataset as data
from kws.evaluation import stream_build, stream_sources, streaming
from kws.evaluation.calibrate import (
    AVERAGE_WINDOWS_MS,
    MINIMUM_COUNTS,
    SUPPRESSIONS_MS,
    THRESHOLDS,
    Fitted,
    Half,
    fit,
    half_streams,
    other_word_splits,
    other_words,
    split_halves,
)
from kws.evaluation.evaluate import ModelDir

REPORTED_TARGETS = (1.0, 5.0)  # FA/h at which the false-reject rate is always given
HELDOUT_SEED = 7919  # added to --seed for the held-out streams: other gaps, order and noise offsets


def _setting_record(setting: streaming.Setting, labels: tuple[str, ...], keywords: tuple[str, ...]) -> dict:
    return {"average_window_ms": setting.average_window_ms, "suppression_ms": setting.suppression_ms,
            "minimum_count": setting.minimum_count, "threshold": setting.threshold,
            "thresholds": {label: t for label, t in zip(labels, setting.label_thresholds(len(labels)), strict=True)
                           if label in keywords}}


def apply(model_dir: ModelDir, setting: streaming.Setting, record: dict) -> None:
    """Writes the setting into model_settings.h, config.toml and the model card."""
    from kws.training.export import update_card
    from kws.training.firmware_files import set_recognizer_defines

    config = model_dir.config
    per_keyword = _setting_record(setting, config.labels, config.keywords.words)["thresholds"]
    recognizer = dataclasses.replace(config.recognizer, average_window_ms=setting.average_window_ms,
                                     suppression_ms=setting.suppression_ms, minimum_count=setting.minimum_count,
                                     thresholds=per_keyword)
    header = model_dir.path / "model_settings.h"
    header.write_bytes(set_recognizer_defines(header.read_bytes().decode(),
                                              dataclasses.replace(config, recognizer=recognizer)).encode())
    config_module.set_values(model_dir.path / "config.toml", "recognizer",
                             {"average_window_ms": setting.average_window_ms, "suppression_ms": setting.suppression_ms,
                              "minimum_count": setting.minimum_count})
    config_module.set_values(model_dir.path / "config.toml", "recognizer.thresholds", per_keyword)
    update_card(model_dir.path, {"recognizer": record}, record["command"])


@dataclass
class Streams:
    """The calibration and held-out streams of one model and their model traces, and what they were built from."""

    clips: data.Clips
    others: list[tuple[np.ndarray, str, str]]
    background: list[stream_sources.NoiseSource]
    calibration: Half
    heldout: Half
    how: str  # the halves are cut by "speakers" or "clips"
    sets: dict[str, tuple[list[stream_build.Stream], list[streaming.Trace]]]  # "calibration"/"heldout" -> streams, traces


def build_streams(model_dir: ModelDir, sources: list[str], noise: list[str], minutes: float, snr_db: float | None,
                  backend: str, split: str, seed: int = 0, other_word_folders: list[str] | None = None) -> Streams:
    """The two halves' streams (`split_halves`, `half_streams`) and the model's scores over each."""
    config = model_dir.config
    clips = data.select_clips(config, sources, split)
    skipped: list[str] = []
    others = other_words(config, other_word_folders or [], skipped, other_word_splits(split))
    print(f"calibrating on {clips.describe()}" + (f", and {len(others)} clips of other words of the same split's "
                                                  f"speakers from {', '.join(other_word_folders or [])}"
                                                  if others else ""),
          file=sys.stderr)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    background = (stream_sources.noise_sources(noise, False, config.audio.sample_rate)
                  or stream_sources.generated_sources(config.audio.sample_rate))
    recordings = [recording for source in background for recording in source.audio]
    calibration, heldout, how = split_halves(config, clips, others)
    sets = {}
    for name, half, stream_seed in (("calibration", calibration, seed), ("heldout", heldout, seed + HELDOUT_SEED)):
        streams = half_streams(config, half, recordings, minutes, snr_db, stream_seed)
        sets[name] = (streams, [streaming.model_trace(model_dir, stream, backend) for stream in streams])
    return Streams(clips, others, background, calibration, heldout, how, sets)


def run(model: str, sources: list[str], noise: list[str], target: float | None, minutes: float | None,
        snr_db: float | None, backend: str, split: str, seed: int = 0, command: str = "",
        other_word_folders: list[str] | None = None, spread: int | None = SPREAD) -> int:
    """`kws calibrate`; returns the exit status. `minutes` None: streams long enough to resolve the target."""
    model_dir = ModelDir(model)
    config = model_dir.config
    labels = config.labels
    target = config.recognizer.false_accepts_per_hour if target is None else target
    if target <= 0:
        raise ValueError(f"--target-fa-per-hour must be positive (got {target}): no stream length can show zero")
    if minutes is None:
        minutes = stream_sources.stream_length(target)
    built = build_streams(model_dir, sources, noise, minutes, snr_db, backend, split, seed, other_word_folders)
    sets = built.sets
    targets = tuple(dict.fromkeys((target, *REPORTED_TARGETS)))
    best, per_window, points = fit(*sets["calibration"], config, targets, spread)

    def measured(fitted: Fitted) -> dict:
        held = streaming.operating_point(*sets["heldout"], config, fitted.setting)
        return {"setting": _setting_record(fitted.setting, labels, config.keywords.words),
                "met_target_calibrating": fitted.met_target, "within_delay_calibrating": not fitted.slow,
                "calibration": streaming.operating_summary(fitted.keyword, fitted.non_keyword, labels),
                "heldout": streaming.operating_summary(*held, labels)}

    chosen = best[target]
    previous = streaming.Setting.from_config(config)
    record = {
        **_setting_record(chosen.setting, labels, config.keywords.words),
        "target_fa_per_hour": target, "met_target": chosen.met_target,
        "median_delay_limit_ms": config.recognizer.median_delay_ms, "within_delay": not chosen.slow,
        **{key: value for key, value in measured(chosen).items() if key != "setting"},
        "at_targets": {f"{t:g}": measured(best[t]) for t in targets},
        "window_cost": {f"{w}": measured(fitted) for w, fitted in sorted(per_window[target].items())},
        "previous": {**_setting_record(previous, labels, config.keywords.words),
                     "calibration": streaming.operating_summary(*streaming.operating_point(*sets["calibration"], config, previous), labels),
                     "heldout": streaming.operating_summary(*streaming.operating_point(*sets["heldout"], config, previous), labels)},
        "halves": {"by": built.how, "calibration_speakers": len(built.calibration.speakers),
                   "heldout_speakers": len(built.heldout.speakers),
                   "shared_speakers": len(built.calibration.speakers & built.heldout.speakers)},
        "streams": {name: stream_sources.describe_streams(streams, built.background)
                    for name, (streams, _) in sets.items()},
        "split": split, "sources": built.clips.sources, "other_words": other_word_folders or [],
        "clips": built.clips.counts(labels), "other_word_clips": len(built.others), "backend": backend, "seed": seed,
        "grid": {"thresholds": list(THRESHOLDS), "average_windows_ms": list(AVERAGE_WINDOWS_MS),
                 "suppressions_ms": list(SUPPRESSIONS_MS), "minimum_counts": list(MINIMUM_COUNTS), "spread": spread,
                 "grid_points": points},
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "command": command,
    }
    apply(model_dir, chosen.setting, record)
    print(summary_text(record), file=sys.stdout)
    hours = record["heldout"]["hours"]
    if record["heldout"]["fa_per_hour_ci95"][1] > target:
        print(f"note: {hours:.2f} h of held-out non-keyword stream bound the false-accept rate only below "
              f"{record['heldout']['fa_per_hour_ci95'][1]}/h (95%); confirming {target}/h takes at least "
              f"{ZERO_EVENT_BOUND / target:.1f} h of non-keyword stream (--stream-minutes "
              f"{minutes_to_resolve(target)})", file=sys.stdout)
    print(f"updated {Path(model_dir.path) / 'model_settings.h'}, config.toml and model_card.json", file=sys.stderr)
    return 0


def summary_text(record: dict) -> str:
    """What calibrate prints: the setting, then calibration and held-out figures side by side."""
    def row(name: str, entry: dict) -> str:
        cal, held = entry["calibration"], entry["heldout"]
        return (f"  {name:<22} {_fa(cal)} {cal['frr']:>6.3f} {_delay(cal)}   |  {_fa(held)} {held['frr']:>6.3f} "
                f"{_delay(held)}")

    setting = record
    lines = [("meets" if record["met_target"] else "NO setting meets") + f" the target of "
             f"{record['target_fa_per_hour']:g} FA/h on the calibration streams"
             + ("" if record["met_target"] else " (chose the lowest FA/h)")
             + (f", median delay within {record['median_delay_limit_ms']} ms" if record["within_delay"]
                else f", NOT within the median delay of {record['median_delay_limit_ms']} ms") + ":",
             f"  average window {setting['average_window_ms']} ms, suppression {setting['suppression_ms']} ms, "
             f"minimum count {setting['minimum_count']}, thresholds "
             + ", ".join(f"{k} {v}" for k, v in setting["thresholds"].items())
             + (" (free)" if record["grid"]["spread"] is None
                else f" (each within {record['grid']['spread']} steps of a shared one)"),
             f"  streams cut by {record['halves']['by']} ({record['halves']['calibration_speakers']} / "
             f"{record['halves']['heldout_speakers']} speakers, {record['halves']['shared_speakers']} shared)",
             "", f"  {'':<22} {'calibration':^30} |  {'held-out':^30}",
             f"  {'setting':<22} {'FA/h':>9} {'FRR':>6} {'median delay':>13}   |  {'FA/h':>9} {'FRR':>6} "
             f"{'median delay':>13}",
             row("chosen", record), row("before (config)", record["previous"])]
    lines += [row(f"fitted for {t} FA/h", entry) for t, entry in record["at_targets"].items()]
    lines += [row(f"best at {w} ms window", entry) for w, entry in record["window_cost"].items()]
    held = record["heldout"]
    lines += ["", "  per keyword (held-out): " + ", ".join(
        f"{k} FRR {v['frr']:.2f} delay {_ms(v['delay_ms_median'])}" for k, v in held["per_keyword"].items())]
    causes = held["false_accepts_by_cause"][:8]
    if causes:
        lines.append(f"  held-out false accepts by cause ({held['false_accept_clips']} of {held['distinct_clips']} "
                     "distinct clips, each replayed): " + ", ".join(
                         f"{c['heard']} -> {c['detected']} x{c['count']}" for c in causes))
    return "\n".join(lines)


def _fa(summary: dict) -> str:
    return f"{summary['fa_per_hour']:>9.2f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _delay(summary: dict) -> str:
    return f"{_ms(summary['delay_ms']['median']):>13}"
