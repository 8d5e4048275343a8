"""`kws report`: one folder that says how good a model is and what it costs on the board.

Sections, each computed here from the modules that own the logic, and all numbers in metrics.json (report.md and
the plots are drawn from it by `kws.evaluation.report_render`):
1. accuracy, int8 (the board's arithmetic) against float, per class, with 95% intervals (`evaluate`);
2. noise robustness: the held-out speech clips re-mixed with each noise source at fixed SNRs (`augment.mix_at_snr`);
3. streaming: false accepts per hour, false rejects and detection delay on long streams run stride by stride
   through the firmware loop's host mirror, and a threshold sweep of the firmware's recognizer (`streaming`);
4. device cost: per-op MACs and estimated time, front end, duty cycle and energy (`cost`), measured beside it when
   a `kws bench` result is given;
5. memory: flash and RAM against the board and the config's targets (`memory`).

Noise sources: each --noise / --unseen-noise argument is one source; a file is a source of its own, a folder is one
source made of every audio file below it (to get a curve per recording, pass the files, e.g. with a shell glob). Without
--noise the generated white, pink and brown noise of `augment.generated_noise` are the sources. The streams' background
is the --noise sources (or the generated ones) joined; unseen noises are only used for the robustness curves.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from kws.common.defaults import ZERO_EVENT_BOUND, minutes_to_resolve, resolves
from kws.common.progress import Progress
from kws.config import Config
from kws.data import audio, augment
from kws.data import dataset as data
from kws.evaluation import stream_build, stream_sources, streaming
from kws.evaluation.evaluate import ModelDir, confusion, evaluate
from kws.evaluation.report_render import markdown, plots
from kws.frontends import dispatch as frontends

SNRS_DB = (None, 20.0, 10.0, 5.0, 0.0)  # None: the clips as recorded
DET_THRESHOLDS = tuple(range(0, 256, 8)) + (255,)
WINDOW_COST_MS = (250, 350, 500, 750, 1000)  # averaging windows whose delay and rates the report compares
NOISE_BATCH_CLIPS = 256


def training_noise(model_dir: ModelDir) -> dict:
    """What noise the model was trained with, as far as the model folder records it."""
    card = _card(model_dir)
    sources = card.get("data", {}).get("sources", [])
    recorded = [s for s in sources if (Path(s) / data.NOISE_WORD).is_dir()]
    recipe_noise = [line for line in card.get("recipe", []) if "--noise" in line]
    configured = list(model_dir.config.augment.noise)
    if configured or recorded or recipe_noise:
        kind = "recordings"
    else:
        kind = "generated white/pink/brown noise (no noise recordings were given)"
    return {"kind": kind, "config_augment_noise": configured,
            "data_sources_with_background_noise": [str(Path(s) / data.NOISE_WORD) for s in recorded],
            "export_commands_with_noise": recipe_noise, "data_sources": sources,
            "noise_seconds": card.get("data", {}).get("noise_seconds"),
            "snr_db": list(model_dir.config.augment.snr_db),
            "noise_probability": model_dir.config.augment.noise_probability}


def _card(model_dir: ModelDir) -> dict:
    path = model_dir.path / "model_card.json"
    return json.loads(path.read_text()) if path.exists() else {}


def noise_robustness(model_dir: ModelDir, clips: data.Clips, clean_raw: np.ndarray,
                     sources: list[stream_sources.NoiseSource], backend: str) -> dict:
    """int8 accuracy of the speech clips (keywords and unknown: SNR is meaningless for silence) at each SNR.

    Each clip gets the same crop of a source at every SNR (seeded per source), so a curve only varies the level.
    Clips are mixed and scored `NOISE_BATCH_CLIPS` at a time: memory grows with the batch, not with clips x noises.
    """
    config = model_dir.config
    labels = config.labels
    speech = [i for i, t in enumerate(clips.targets) if labels[t] != "silence"]
    targets = clips.targets[speech]
    model = model_dir.int8(backend)
    scaling, extractor = model_dir.scaling(model), frontends.clip_features(config)
    clean = model.predict(scaling.apply(clean_raw[speech])).argmax(axis=1)
    noisy_snrs = [snr for snr in SNRS_DB if snr is not None]
    curves = []
    for number, source in enumerate(sources):
        rng = np.random.default_rng([stream_sources.NOISE_SEED, number])
        noise = stream_build.BackgroundNoise(source.audio)
        predicted: dict[float, list[np.ndarray]] = {snr: [] for snr in noisy_snrs}
        with Progress(len(speech), f"noise {source.name}", unit="clips") as progress:
            for first in range(0, len(speech), NOISE_BATCH_CLIPS):
                batch = speech[first:first + NOISE_BATCH_CLIPS]
                crops = [stream_build.background_crop(noise, config.clip_samples, rng) for _ in batch]
                for snr in noisy_snrs:
                    raw = np.stack([extractor.raw(audio.float_to_int16(augment.mix_at_snr(
                        clips.audio[i].astype(np.float32) / 32768.0, crop, snr))) for i, crop in zip(batch, crops,
                                                                                                     strict=True)])
                    predicted[snr].append(model.predict(scaling.apply(raw)).argmax(axis=1))
                progress.update(len(batch))
        points = [_point(None, confusion(labels, targets, clean))]
        points += [_point(snr, confusion(labels, targets, np.concatenate(predicted[snr]))) for snr in noisy_snrs]
        curves.append({"name": source.name, "origin": source.origin, "unseen": source.unseen, "points": points})
    return {"clips": len(speech), "per_class": {labels[t]: int(np.sum(targets == t)) for t in np.unique(targets)},
            "snr_db": list(SNRS_DB), "curves": curves}


def _point(snr: float | None, result: dict) -> dict:
    return {"snr_db": snr, "accuracy": result["accuracy"], "ci95": result["ci95"], "clips": result["clips"],
            "per_class": {label: row["accuracy"] for label, row in result["per_class"].items() if row["clips"]}}


def stream_traces(model_dir: ModelDir, clips: data.Clips, noise: list[stream_sources.NoiseSource], minutes: float,
                  snr_db: float | None, backend: str, seed: int, others: list[tuple[np.ndarray, str, str]] | None = None
                  ) -> tuple[list[stream_build.Stream], list[streaming.Trace]]:
    """The keyword and non-keyword streams and the model's scores over them (the expensive part, done once).
    `others`: (clip, word, speaker) of words outside the model's classes, for the non-keyword stream."""
    background = [recording for source in noise for recording in source.audio]
    others = others or []
    streams = stream_build.keyword_streams(model_dir.config, clips.audio + [clip for clip, _, _ in others],
                                           list(clips.targets) + [-1] * len(others), background, minutes, snr_db, seed,
                                           [stream_build.word_and_speaker(path)[0] for path in clips.paths]
                                           + [word for _, word, _ in others])
    return streams, [streaming.model_trace(model_dir, stream, backend) for stream in streams]


def streaming_metrics(model_dir: ModelDir, streams: list[stream_build.Stream], traces: list[streaming.Trace],
                      noise: list[stream_sources.NoiseSource]) -> dict:
    config = model_dir.config
    labels = config.labels
    setting = streaming.Setting.from_config(config)
    keyword, non_keyword = streaming.operating_point(streams, traces, config, setting)
    sweep = []
    for threshold in DET_THRESHOLDS:
        swept_keyword, swept_non_keyword = streaming.operating_point(streams, traces, config, streaming.Setting(
            threshold, setting.average_window_ms, setting.suppression_ms, setting.minimum_count))
        sweep.append({"threshold": threshold, "fa_per_hour": round(swept_non_keyword.fa_per_hour, 3),
                      "frr": round(swept_keyword.frr, 4), "false_accepts": swept_non_keyword.false_accept_count})
    # keyword_streams makes one stream of each kind, so the operating point's two outcomes are the streams' own.
    per_stream = {stream_build.KEYWORD_STREAM: keyword.summary(labels),
                  stream_build.NON_KEYWORD_STREAM: non_keyword.summary(labels)}
    return {"streams": stream_sources.describe_streams(streams, noise), "setting": vars(setting),
            "per_keyword_det": keyword_curves(streams, traces, config, setting),
            "window_cost": window_cost(streams, traces, config, setting),
            "calibration": _card(model_dir).get("recognizer"),
            "inference_every_strides": config.recognizer.inference_every_strides,
            "tolerance_ms": streaming.TOLERANCE_MS, "gap_s": [stream_build.MIN_GAP_S, stream_build.MAX_GAP_S],
            "operating": streaming.operating_summary(keyword, non_keyword, labels), "per_stream": per_stream, "det": sweep,
            "fa_per_hour_target": config.recognizer.false_accepts_per_hour}


def window_cost(streams: list[stream_build.Stream], traces: list[streaming.Trace], config: Config,
                setting: streaming.Setting) -> list[dict]:
    """The configured thresholds at each averaging window of WINDOW_COST_MS: what a longer average costs in delay
    (and buys in false accepts). The thresholds are not refitted per window (kws calibrate's record has that)."""
    rows = []
    for window in WINDOW_COST_MS:
        keyword, non_keyword = streaming.operating_point(streams, traces, config,
                                                         dataclasses.replace(setting, average_window_ms=window))
        rows.append({"average_window_ms": window, "frr": round(keyword.frr, 4),
                     "fa_per_hour": round(non_keyword.fa_per_hour, 3),
                     "delay_ms_median": keyword.summary(config.labels)["delay_ms"]["median"]})
    return rows


def keyword_curves(streams: list[stream_build.Stream], traces: list[streaming.Trace], config: Config,
                   setting: streaming.Setting) -> dict[str, list[dict]]:
    from kws.evaluation import calibrate

    return calibrate.keyword_curves(streams, traces, config, setting)


def device_cost(model_dir: ModelDir, bench: dict | None) -> dict:
    """Per-op cost, front end, duty cycle and energy: instruction counts measured by `kws m4` where the model has
    an m4_measurement.json, the cost model's estimate (with its measured error) elsewhere; `kws bench`
    measurements beside them if given."""
    from kws.cost.ble import shipped_schedule
    from kws.cost.estimate import CPI_UNCERTAINTY, energy, estimate_model, measured_rates
    from kws.cost.m4_record import card_summary, load_measurement
    from kws.evaluation.runtime import model_id

    config, board = model_dir.config, model_dir.config.board
    every = config.recognizer.inference_every_strides
    cost = estimate_model(model_dir.tflite, board.clock_hz, board.cycles_per_instruction)
    us_per_instruction = board.cycles_per_instruction / board.clock_hz * 1e6
    m4 = load_measurement(model_dir.path)
    if m4 is not None:
        counts = m4["instructions"]
        layer_instructions = [layer["instructions"] for layer in counts["layers"]]
        instructions = counts["per_inference"]["median"]
        stride_instructions = counts["per_frontend_stride"]["mean"]
    else:
        layer_instructions = [op.instructions for op in cost.ops]
        instructions, stride_instructions = cost.instructions, measured_rates()["frontend_per_stride"]
    inference_us, frontend_us = instructions * us_per_instruction, stride_instructions * us_per_instruction
    power = energy(board, inference_us, config.frontend.stride_ms, every, frontend_us)
    result = {
        "source": "measured" if m4 is not None else "estimated",
        "cycles_per_instruction": board.cycles_per_instruction, "clock_hz": board.clock_hz,
        "uncertainty": CPI_UNCERTAINTY,
        "ops": [{"op": op.op, "macs": op.macs, "instructions": measured, "estimated": op.instructions,
                 "us": round(measured * us_per_instruction, 1), "calibrated": op.calibrated}
                for op, measured in zip(cost.ops, layer_instructions, strict=True)],
        "estimate_error": measured_rates().get("max_error_left_out", {}),
        "macs": cost.macs, "instructions": instructions, "estimated_instructions": cost.instructions,
        "inference_us": round(inference_us, 1), "frontend_us_per_stride": round(frontend_us, 1),
        "inference_every_strides": every, "period_ms": config.frontend.stride_ms * every,
        "duty_cycle": round(power.duty_cycle, 4), "inference_uj": round(power.inference_uj, 2),
        "average_mw": round(power.average_mw, 3),
        "board": {"voltage": board.voltage, "active_ma": board.active_ma, "idle_ma": board.idle_ma},
        "latency_target_ms": config.targets.latency_ms,
        # what the optional Bluetooth LE peripheral would add, for the firmware's radio schedule (kws_ble.h)
        "ble": shipped_schedule(board, model_id(model_dir.tflite)),
    }
    by_op = result["by_op"] = {}
    for row in result["ops"]:
        total = by_op.setdefault(row["op"], {"count": 0, "macs": 0, "instructions": 0, "us": 0.0})
        total["count"] += 1
        total["macs"] += row["macs"]
        total["instructions"] += row["instructions"]
        total["us"] = round(total["us"] + row["us"], 1)
    if m4 is not None:
        result["m4"] = card_summary(m4)
    if bench is not None:
        timing = bench.get("board", {}).get("timing")
        latency = bench.get("latency_us", {})
        fe_clip = latency.get("fe_us", {}).get("p50")  # RESULT's fe_us is the whole clip's front end
        result["measured"] = {"timing": timing, "board": bench.get("board", {}),
                              "inference_us_p50": latency.get("inf_us", {}).get("p50"),
                              "frontend_us_p50_per_clip": fe_clip,
                              "frontend_us_per_stride": None if fe_clip is None else round(fe_clip / config.num_slices, 1),
                              "energy": bench.get("energy"), "power": bench.get("power"),
                              "clips": bench.get("accuracy", {}).get("clips")}
    return result


def memory_budget(model_dir: ModelDir) -> dict:
    from kws.common.paths import DEFAULT_MODEL
    from kws.cost.m4_image import M4Error
    from kws.cost.m4_record import load_measurement
    from kws.cost.memory import budget
    from kws.evaluation.runtime import model_ops

    card = _card(model_dir)
    arena = card.get("sizes", {}).get("arena_bytes") or _arena_define(model_dir)
    own = load_measurement(model_dir.path)
    measurement = own or load_measurement(DEFAULT_MODEL)
    if measurement is None:
        raise M4Error(f"neither {model_dir.path} nor {DEFAULT_MODEL} has an m4_measurement.json: run kws m4 --save")
    return budget(model_dir.config, len(model_dir.tflite), arena, model_ops(model_dir.tflite), measurement,
                  own is not None)


def _arena_define(model_dir: ModelDir) -> int:
    for line in (model_dir.path / "model_settings.h").read_text().splitlines():
        words = line.split()
        if words[:2] == ["#define", "KWS_ARENA_SIZE"]:
            return int(words[2])
    raise ValueError(f"{model_dir.path}: no arena size in model_card.json or model_settings.h")


def run(model: str, sources: list[str], noise: list[str], unseen_noise: list[str], out: str | None,
        stream_minutes: float | None, stream_snr: float | None, backend: str, split: str, bench: str | None,
        seed: int = 0, command: str = "", update_card: bool = False, other_words: list[str] | None = None) -> int:
    """`kws report`; returns the exit status. `other_words`: folders of <word>/<clip> non-keywords for the
    non-keyword stream (beside the split's unknown words). `stream_minutes` None: long enough to resolve the
    config's false-accept target (`defaults.minutes_to_resolve`).

    The model card records the report only when it goes to the model's own report/ folder or `update_card` asks
    for it: a report written elsewhere (a trial, a test) leaves the model folder as it was. A report that fails
    leaves no folder behind that it created.
    """
    model_dir = ModelDir(model)
    if stream_minutes is None:
        stream_minutes = stream_sources.stream_length(model_dir.config.recognizer.false_accepts_per_hour)
    own_folder = model_dir.path / "report"
    folder = Path(out) if out else own_folder
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _write_report(model_dir, folder, sources, noise, unseen_noise, stream_minutes, stream_snr, backend, split,
                      bench, seed, command, update_card or folder.resolve() == own_folder.resolve(), other_words)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return 0


def _write_report(model_dir: ModelDir, folder: Path, sources: list[str], noise: list[str], unseen_noise: list[str],
                  stream_minutes: float, stream_snr: float | None, backend: str, split: str, bench: str | None,
                  seed: int, command: str, update_card: bool, other_words: list[str] | None = None) -> None:
    from kws.evaluation.calibrate import other_word_splits
    from kws.evaluation.calibrate import other_words as load_other_words
    from kws.training.export import update_card as update_model_card

    config = model_dir.config
    clips = data.select_clips(config, sources, split)
    test_noise = (stream_sources.noise_sources(noise, False, config.audio.sample_rate)
                  or stream_sources.generated_sources(config.audio.sample_rate))
    unseen = stream_sources.noise_sources(unseen_noise, True, config.audio.sample_rate)
    bench_result = json.loads(Path(bench).read_text()) if bench else None
    skipped: list[str] = []
    others = load_other_words(config, other_words or [], skipped, other_word_splits(split))

    print(f"report on {clips.describe()}" + (f", and {len(others)} clips of other words from "
                                             f"{', '.join(other_words or [])} ({len(skipped)} unreadable)"
                                             if others else ""), file=sys.stderr)
    metrics = {
        "model": {"name": config.name, "model_id": _card(model_dir).get("model_id"), "path": str(model_dir.path),
                  "labels": list(config.labels), "architecture": config.model.architecture},
        "generated": {"at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "command": command,
                      "backend": backend, "seed": seed},
        "data": {"sources": clips.sources, "split": split, "splits": list(data.SPLIT_CHOICES[split]),
                 "clips": len(clips.targets), "per_class": clips.counts(config.labels)},
        "training_noise": training_noise(model_dir),
    }
    clean_raw = frontends.raw_batch(model_dir.config, clips.audio, len(clips.audio), "features (clean)")
    metrics["accuracy"] = evaluate(model_dir, clean_raw, clips.targets, backend)
    metrics["noise"] = noise_robustness(model_dir, clips, clean_raw, test_noise + unseen, backend)
    streams, traces = stream_traces(model_dir, clips, test_noise, stream_minutes, stream_snr, backend, seed, others)
    metrics["streaming"] = streaming_metrics(model_dir, streams, traces, test_noise)
    metrics["streaming"]["other_words"] = other_words or []
    metrics["streaming"]["other_word_clips"] = len(others)
    metrics["cost"] = device_cost(model_dir, bench_result)
    metrics["memory"] = memory_budget(model_dir)
    metrics["targets"] = targets(metrics, config)
    metrics["plots"] = plots(metrics, folder)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / "report.md").write_text(markdown(metrics))
    if update_card:
        update_model_card(model_dir.path, {"report": {
            "folder": str(folder), "at": metrics["generated"]["at"], "split": split,
            "int8_accuracy": metrics["accuracy"]["int8"]["accuracy"], "clips": metrics["accuracy"]["int8"]["clips"],
            **{key: metrics["streaming"]["operating"][key] for key in ("fa_per_hour", "frr", "hours", "keywords")}}},
            command)
    card_note = f"; recorded in {model_dir.path / 'model_card.json'}" if update_card else ""
    print(f"{folder / 'report.md'}, metrics.json and {len(metrics['plots'])} plots{card_note}", file=sys.stderr)


def targets(metrics: dict, config: Config) -> list[dict]:
    """Each target of the config (and the FA/h target of the recognizer) against what was measured."""
    acc, op, cost, memory = (metrics["accuracy"]["int8"], metrics["streaming"]["operating"], metrics["cost"],
                             metrics["memory"])
    rows = [("int8 accuracy", acc["accuracy"], config.targets.accuracy, ">="),
            ("false accepts per hour", op["fa_per_hour"], config.recognizer.false_accepts_per_hour, "<="),
            (f"inference time, {cost['source']} instructions (ms)", round(cost["inference_us"] / 1000, 2),
             config.targets.latency_ms, "<="),
            # The board must finish the inference and the front end of every stride within one inference period,
            # or audio piles up in the ring until it overruns.
            (f"CPU busy per inference period, {cost['source']} instructions (ms)",
             round((cost["inference_us"] + cost["frontend_us_per_stride"] * cost["inference_every_strides"]) / 1000, 2),
             cost["period_ms"], "<="),
            ("model flatbuffer (bytes)", memory["flash"]["parts"][0]["bytes"], config.targets.flash_bytes, "<="),
            ("tensor arena (bytes)", memory["ram"]["parts"][0]["bytes"], config.targets.arena_bytes, "<="),
            ("flash total, estimated (bytes)", memory["flash"]["total_bytes"], memory["flash"]["board_bytes"], "<="),
            ("RAM total, estimated (bytes)", memory["ram"]["total_bytes"], memory["ram"]["board_bytes"], "<=")]
    judged = [{"what": what, "measured": value, "target": target, "met": None if value is None else
               (value >= target if sense == ">=" else value <= target)} for what, value, target, sense in rows]
    judged[1].update(fa_judgement(op, config.recognizer.false_accepts_per_hour))
    return judged


def fa_judgement(op: dict, target: float) -> dict:
    """Whether the non-keyword stream's false accepts per hour meet `target`. Above it when the 95% interval lies
    wholly above; else judged by the measured rate only if the stream could have shown the target met at all
    (`defaults.resolves`); otherwise not judged, with why: 0 false accepts in 10 minutes is no evidence of 1/h."""
    hours, interval = op["hours"], op["fa_per_hour_ci95"]
    if interval and interval[0] > target:
        return {"met": False}
    if resolves(hours, target):
        return {"met": op["fa_per_hour"] <= target}
    return {"met": None, "note": f"not judged: {hours * 60:.0f} min of non-keyword stream cannot show {target:g}/h "
                                 f"met (no false accept at all would bound the rate only below "
                                 f"{ZERO_EVENT_BOUND / hours:.1f}/h, 95%); --stream-minutes "
                                 f"{minutes_to_resolve(target)} can"}


