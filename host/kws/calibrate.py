"""`kws calibrate`: the recognizer setting with the lowest false-reject rate (on the keyword stream) that meets a
false-accepts-per-hour target (on the non-keyword stream: other speech and noise), written back into the model
folder.

The model runs once over the streams (`report.stream_traces`); each setting of the grid is then a replay of the
firmware's recognizer over the recorded scores. Among the settings whose measured FA/h is at most the target, the
lowest false-reject rate wins (ties: fewer false accepts, then the higher threshold); if none meets the target, the
one with the fewest false accepts per hour (ties: the lower false-reject rate) is chosen and the result says so.

Written: the KWS_RECOGNIZER_* lines of model_settings.h (every other byte unchanged), the [recognizer] table of the
folder's config.toml (so the virtual board and every host tool use the same values), and a `recognizer` section of
model_card.json with what was measured.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path

from kws import config as config_module
from kws import data, report, streaming
from kws.evaluate import ModelDir

THRESHOLDS = tuple(range(80, 251, 10))
# Short windows matter: a word fills the 1 s model window for only a few hundred ms of inferences, so a long
# average dilutes its scores with the windows that hold half of it.
AVERAGE_WINDOWS_MS = (250, 350, 500, 750, 1000)
SUPPRESSIONS_MS = (1000, 1500, 2000)
# Zero events in T hours put the 95% upper bound of a Poisson rate at this / T (chi2.ppf(0.975, 2) / 2).
ZERO_EVENT_BOUND = 3.689


def search(streams: list[streaming.Stream], traces: list[streaming.Trace], config: config_module.Config,
           target: float) -> tuple[dict, list[dict]]:
    """Every grid setting's FA/h and FRR, and the chosen one (with `met_target`)."""
    grid = []
    for window in AVERAGE_WINDOWS_MS:
        for suppression in SUPPRESSIONS_MS:
            for threshold in THRESHOLDS:
                setting = streaming.Setting(threshold, window, suppression, config.recognizer.minimum_count)
                keyword, non_keyword = streaming.operating_point(streams, traces, config, setting)
                grid.append({**vars(setting), "fa_per_hour": round(non_keyword.fa_per_hour, 3),
                             "frr": round(keyword.frr, 4), "outcome": (keyword, non_keyword)})
    meeting = [row for row in grid if row["fa_per_hour"] <= target]
    if meeting:
        best = min(meeting, key=lambda r: (r["frr"], r["fa_per_hour"], -r["threshold"]))
    else:
        best = min(grid, key=lambda r: (r["fa_per_hour"], r["frr"]))
    return {**best, "met_target": bool(meeting)}, [{k: v for k, v in row.items() if k != "outcome"} for row in grid]


def apply(model_dir: ModelDir, setting: streaming.Setting, record: dict) -> None:
    """Writes the setting into model_settings.h, config.toml and the model card."""
    from kws.export import set_recognizer_defines, update_card

    recognizer = dataclasses.replace(model_dir.config.recognizer, threshold=setting.threshold,
                                     average_window_ms=setting.average_window_ms,
                                     suppression_ms=setting.suppression_ms)
    header = model_dir.path / "model_settings.h"
    header.write_bytes(set_recognizer_defines(header.read_bytes().decode(), recognizer).encode())
    config_module.set_values(model_dir.path / "config.toml", "recognizer",
                             {"threshold": setting.threshold, "average_window_ms": setting.average_window_ms,
                              "suppression_ms": setting.suppression_ms})
    update_card(model_dir.path, {"recognizer": record}, record["command"])


def run(model: str, sources: list[str], noise: list[str], target: float | None, minutes: float,
        snr_db: float | None, backend: str, split: str, seed: int = 0, command: str = "") -> int:
    """`kws calibrate`; returns the exit status."""
    model_dir = ModelDir(model)
    config = model_dir.config
    target = config.recognizer.false_accepts_per_hour if target is None else target
    if target <= 0:
        raise ValueError(f"--target-fa-per-hour must be positive (got {target}): no stream length can show zero")
    clips = data.select_clips(config, sources, split)
    print(f"calibrating on {clips.describe()}", file=sys.stderr)
    background = (report.noise_sources(noise, False, config.audio.sample_rate)
                  or report.generated_sources(config.audio.sample_rate))
    streams, traces = report.stream_traces(model_dir, clips, background, minutes, snr_db, backend, seed)
    best, grid = search(streams, traces, config, target)
    keyword, non_keyword = best.pop("outcome")
    setting = streaming.Setting(best["threshold"], best["average_window_ms"], best["suppression_ms"],
                                best["minimum_count"])
    before_keyword, before_non_keyword = streaming.operating_point(streams, traces, config,
                                                                   streaming.Setting.from_config(config))
    record = {
        "threshold": setting.threshold, "average_window_ms": setting.average_window_ms,
        "suppression_ms": setting.suppression_ms, "minimum_count": setting.minimum_count,
        "target_fa_per_hour": target, "met_target": best["met_target"],
        "measured": streaming.operating_summary(keyword, non_keyword, config.labels),
        "previous": {**vars(streaming.Setting.from_config(config)),
                     "fa_per_hour": round(before_non_keyword.fa_per_hour, 3), "frr": round(before_keyword.frr, 4)},
        "streams": report.describe_streams(streams, background), "split": split, "sources": clips.sources,
        "clips": clips.counts(config.labels), "backend": backend, "seed": seed,
        "grid": {"thresholds": list(THRESHOLDS), "average_windows_ms": list(AVERAGE_WINDOWS_MS),
                 "suppressions_ms": list(SUPPRESSIONS_MS), "settings": len(grid)},
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "command": command,
    }
    apply(model_dir, setting, record)
    measured = record["measured"]
    verdict = "meets" if best["met_target"] else "NO setting meets"
    print(f"{verdict} the target of {target} FA/h over {measured['hours'] * 60:.1f} min of non-keyword speech: "
          f"threshold {setting.threshold}, average window {setting.average_window_ms} ms, suppression "
          f"{setting.suppression_ms} ms -> {measured['fa_per_hour']} FA/h (95% CI {measured['fa_per_hour_ci95']}), "
          f"FRR {measured['frr']} on {measured['keywords']} keywords (was {record['previous']['fa_per_hour']} FA/h, "
          f"FRR {record['previous']['frr']})"
          + ("" if best["met_target"] else "; chose the lowest FA/h"), file=sys.stdout)
    if measured["fa_per_hour_ci95"][1] > target:
        print(f"note: {measured['hours']:.2f} h of non-keyword stream bound the false-accept rate only below "
              f"{measured['fa_per_hour_ci95'][1]}/h (95%); confirming {target}/h takes at least "
              f"{ZERO_EVENT_BOUND / target:.1f} h of non-keyword stream (--stream-minutes "
              f"{ZERO_EVENT_BOUND / target * 60:.0f})",
              file=sys.stdout)
    print(f"updated {Path(model_dir.path) / 'model_settings.h'}, config.toml and model_card.json", file=sys.stderr)
    return 0
