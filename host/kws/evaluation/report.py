"""`kws report`: one folder that says how good a model is and what it costs on the board.

Sections, each computed here from the modules that own the logic, and all numbers in metrics.json:
1. accuracy, int8 (the board's arithmetic) against float, per class, with 95% intervals (`evaluate`);
2. noise robustness: the held-out speech clips re-mixed with each noise source at fixed SNRs (`augment.mix_at_snr`);
3. streaming: false accepts per hour, false rejects and detection delay on long streams run stride by stride
   through the firmware loop's host mirror, and a threshold sweep of the firmware's recognizer (`streaming`);
4. device cost: per-op MACs and estimated time, front end, duty cycle and energy (`cost`), measured beside it when
   a `kws bench` result is given;
5. memory: flash and RAM against the board and the config's targets (`memory`).

Noise sources: each --noise / --unseen-noise argument is one source; a file is a source of its own, a folder is one
source made of every WAV below it (to get a curve per recording, pass the files, e.g. with a shell glob). Without
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
from kws.evaluation.evaluate import ModelDir, confusion, evaluate, format_confusion
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
    from kws.cost.estimate import CPI_UNCERTAINTY, energy, estimate_model, measured_rates
    from kws.cost.m4 import card_summary, load_measurement

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
    from kws.cost.m4 import M4Error, load_measurement
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


def plots(metrics: dict, out: Path) -> list[str]:
    """Writes the PNGs; returns their file names."""
    from kws.evaluation import plots as draw

    acc, noise, stream, cost = metrics["accuracy"], metrics["noise"], metrics["streaming"], metrics["cost"]
    data_note = f"{metrics['data']['split']} split, {acc['int8']['clips']} clips"
    draw.confusion(acc["int8"], f"int8 confusion ({data_note})\naccuracy {acc['int8']['accuracy']}",
                   out / "confusion.png")
    draw.accuracy_vs_snr(noise["curves"], f"int8 accuracy vs SNR ({noise['clips']} speech clips per point, "
                         "95% CI)", out / "accuracy_vs_snr.png")
    operating = stream["operating"]
    draw.det_curve(stream["det"], {**operating, "threshold": stream["setting"]["threshold"]}, operating["hours"],
                   f"DET: threshold sweep over {operating['hours'] * 60:.0f} min of streams, "
                   f"{operating['keywords']} keywords", out / "det.png")
    draw.det_per_keyword(stream["per_keyword_det"], operating["hours"],
                         f"DET per keyword (each alone; window {stream['setting']['average_window_ms']} ms)",
                         out / "det_per_keyword.png")
    measured = cost.get("measured") or {}
    on_board = measured.get("timing") == "dwt"
    stages = [{"name": f"{name} x{row['count']}", "estimated_us": row["us"], "uncertainty": cost["uncertainty"],
               "measured_us": None} for name, row in cost["by_op"].items()]
    stages.append({"name": "model (total)", "estimated_us": cost["inference_us"], "uncertainty": cost["uncertainty"],
                   "measured_us": measured.get("inference_us_p50") if on_board else None})
    stages.append({"name": f"front end x{cost['inference_every_strides']} strides",
                   "estimated_us": cost["frontend_us_per_stride"] * cost["inference_every_strides"],
                   "uncertainty": cost["uncertainty"],
                   "measured_us": measured["frontend_us_per_stride"] * cost["inference_every_strides"]
                   if on_board and measured.get("frontend_us_per_stride") is not None else None})
    draw.latency(stages, cost["period_ms"], f"time per inference period ({cost['period_ms']} ms) at "
                 f"{cost['clock_hz'] / 1e6:.0f} MHz, CPI {cost['cycles_per_instruction']}", out / "latency.png")
    return ["confusion.png", "accuracy_vs_snr.png", "det.png", "det_per_keyword.png", "latency.png"]


def run(model: str, sources: list[str], noise: list[str], unseen_noise: list[str], out: str | None,
        stream_minutes: float | None, stream_snr: float | None, backend: str, split: str, bench: str | None,
        seed: int = 0, command: str = "", update_card: bool = False, other_words: list[str] | None = None) -> int:
    """`kws report`; returns the exit status. `other_words`: folders of <word>/*.wav non-keywords for the
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
    from kws.evaluation.calibrate import other_words as load_other_words
    from kws.training.export import update_card as update_model_card

    config = model_dir.config
    clips = data.select_clips(config, sources, split)
    test_noise = (stream_sources.noise_sources(noise, False, config.audio.sample_rate)
                  or stream_sources.generated_sources(config.audio.sample_rate))
    unseen = stream_sources.noise_sources(unseen_noise, True, config.audio.sample_rate)
    bench_result = json.loads(Path(bench).read_text()) if bench else None
    skipped: list[str] = []
    others = load_other_words(config, other_words or [], skipped, data.SPLIT_CHOICES[split])

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


def _ci(interval: list[float] | None) -> str:
    return f"{interval[0]:.3f}–{interval[1]:.3f}" if interval else "n/a"


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def streaming_evidence(stream: dict, op: dict, thresholds: dict[str, int]) -> list[str]:
    """report.md's per-keyword evidence: FRR and delay per keyword, false accepts by cause, what the averaging window
    costs in delay, and how kws calibrate chose the setting (calibration beside held-out streams)."""
    lines = ["### Per keyword", "", "Delay: detection time minus the end of the word (median / 90th percentile over "
             "the keyword's hits).", "", "| keyword | threshold | spoken | detected | FRR | delay median / p90 (ms) |",
             "|---|---|---|---|---|---|"]
    for word, row in op["per_keyword"].items():
        lines.append(f"| {word} | {thresholds.get(word, stream['setting']['threshold'])} | {row['inserted']} | "
                     f"{row['detected']} | {_fmt(row['frr'])} | {_fmt(row['delay_ms_median'], 0)} / "
                     f"{_fmt(row['delay_ms_p90'], 0)} |")
    lines += ["", "![DET per keyword](det_per_keyword.png)", "", "False accepts by cause (what was heard -> the "
              "keyword detected; *noise*: no word near):", "", "| stream | heard | detected | count |",
              "|---|---|---|---|"]
    causes = [("non-keyword", c) for c in op["false_accepts_by_cause"]] + [
        ("keyword", c) for c in op["keyword_stream_false_accepts"]["by_cause"]]
    lines += [f"| {name} | {c['heard']} | {c['detected']} | {c['count']} |" for name, c in causes[:20]] or ["| - | | | |"]
    lines += ["", f"What the averaging window costs: the configured thresholds at each window "
              f"(configured: {stream['setting']['average_window_ms']} ms; thresholds not refitted).", "",
              "| window (ms) | median delay (ms) | FRR | FA/h |", "|---|---|---|---|"]
    lines += [f"| {r['average_window_ms']} | {_fmt(r['delay_ms_median'], 0)} | {_fmt(r['frr'])} | "
              f"{_fmt(r['fa_per_hour'])} |" for r in stream["window_cost"]]
    calibration = stream.get("calibration")
    if calibration and "heldout" in calibration:
        lines += ["", "### How the setting was chosen (kws calibrate)", "",
                  f"`{calibration.get('command') or 'kws calibrate'}`: fitted on calibration streams, then replayed on "
                  f"held-out streams of other {calibration['halves']['by']} (split {calibration['split']}). A gap "
                  "between the two columns is overfitting.", "",
                  "| setting | calibration FA/h | FRR | median delay | held-out FA/h | FRR | median delay |",
                  "|---|---|---|---|---|---|---|"]
        rows = [("chosen", calibration), ("before calibration", calibration["previous"])]
        rows += [(f"fitted for {t} FA/h", entry) for t, entry in calibration["at_targets"].items()]
        rows += [(f"best at {w} ms window (refitted)", entry) for w, entry in calibration["window_cost"].items()]
        for name, entry in rows:
            cal, held = entry["calibration"], entry["heldout"]
            lines.append(f"| {name} | {_fmt(cal['fa_per_hour'])} | {_fmt(cal['frr'])} | "
                         f"{_fmt(cal['delay_ms']['median'], 0)} | {_fmt(held['fa_per_hour'])} | {_fmt(held['frr'])} | "
                         f"{_fmt(held['delay_ms']['median'], 0)} |")
    else:
        lines += ["", "The recognizer is **not calibrated** with held-out checking: run `kws calibrate` "
                  "(it fits per-keyword thresholds and reports them on held-out streams)."]
    return lines + [""]


def markdown(m: dict) -> str:
    """report.md: a summary table first, then one section per measurement, each saying what data it used."""
    model, acc, noise, stream, cost, memory = (m["model"], m["accuracy"], m["noise"], m["streaming"], m["cost"],
                                               m["memory"])
    int8 = acc["int8"]
    lines = [f"# Model report: {model['name']} ({model['model_id']})", "",
             f"Generated {m['generated']['at']} by `{m['generated']['command'] or 'kws report'}`; int8 runtime "
             f"`{m['generated']['backend']}` (bit-identical to TFLM). Data: {', '.join(m['data']['sources'])}, "
             f"split **{m['data']['split']}** ({', '.join(m['data']['splits'])}): {m['data']['clips']} clips "
             f"({', '.join(f'{k} {v}' for k, v in m['data']['per_class'].items())}). All numbers are in "
             "metrics.json.", "", "## Summary", "", "| what | measured | target | met |", "|---|---|---|---|"]
    for row in m["targets"]:
        met = row.get("note") or {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
        lines.append(f"| {row['what']} | {_fmt(row['measured'])} | {_fmt(row['target'])} | {met} |")
    op = stream["operating"]
    lines += ["", f"Streaming at the configured recognizer: false-reject rate {_fmt(op['frr'])} "
              f"({op['missed']} of {op['keywords']} keywords missed, 95% CI {_ci(op['frr_ci95'])}), "
              f"{op['false_accepts']} false accepts in {op['hours'] * 60:.1f} min of non-keyword speech and noise "
              f"({_fmt(op['fa_per_hour'])}/h, 95% CI {_ci(op['fa_per_hour_ci95'])}).", ""]

    lines += ["## 1. Accuracy (clean clips)", "",
              f"{int8['clips']} clips of the {m['data']['split']} split; each clip's 95% interval is Wilson's. "
              "The int8 figure is the board's arithmetic (microfrontend, the firmware's feature scaling, int8 model).",
              "", "| model | accuracy | 95% CI | clips |", "|---|---|---|---|",
              f"| int8 ({acc['int8_runtime']}) | {_fmt(int8['accuracy'], 4)} | {_ci(int8['ci95'])} | {int8['clips']} |"]
    if "float" in acc:
        flt = acc["float"]
        lines.append(f"| float (model.keras) | {_fmt(flt['accuracy'], 4)} | {_ci(flt['ci95'])} | {flt['clips']} |")
        lines += ["", f"int8 minus float: {acc['int8_minus_float']:+.4f}."]
    lines += ["", "| class | clips | int8 accuracy | 95% CI |" + (" float accuracy |" if "float" in acc else ""),
              "|---|---|---|---|" + ("---|" if "float" in acc else "")]
    for label, row in int8["per_class"].items():
        extra = f" {_fmt(acc['float']['per_class'][label]['accuracy'], 4)} |" if "float" in acc else ""
        lines.append(f"| {label} | {row['clips']} | {_fmt(row['accuracy'], 4)} | {_ci(row['ci95'])} |{extra}")
    lines += ["", "Confusion (int8; rows: true class, columns: predicted):", "", "```", format_confusion(int8), "```",
              "", "![confusion](confusion.png)", ""]

    tn = m["training_noise"]
    lines += ["## 2. Noise robustness", "",
              f"The {noise['clips']} speech clips of the split (keywords and unknown words; silence has no SNR: "
              f"{', '.join(f'{k} {v}' for k, v in noise['per_class'].items())}) re-mixed with each noise at each SNR "
              "(`augment.mix_at_snr`: clip RMS over noise RMS, one fixed crop per clip and noise), then the board's "
              "features and the int8 model. Each point is int8 accuracy over all of them. A --noise argument is one "
              "source (a folder: all its WAVs); *unseen* marks --unseen-noise sources, never used in training.", "",
              f"Training noise: {tn['kind']}; config augment.noise {tn['config_augment_noise'] or '[]'}; "
              f"background-noise folders in the training data {tn['data_sources_with_background_noise'] or 'none'}; "
              f"training SNR {tn['snr_db'][0]:g}–{tn['snr_db'][1]:g} dB with probability {tn['noise_probability']}.",
              "", "| noise | " + " | ".join("clean" if s is None else f"{s:g} dB" for s in noise["snr_db"]) + " |",
              "|---|" + "---|" * len(noise["snr_db"])]
    for curve in noise["curves"]:
        name = f"{curve['name']} (unseen)" if curve["unseen"] else curve["name"]
        lines.append(f"| {name} | " + " | ".join(_fmt(p["accuracy"]) for p in curve["points"]) + " |")
    lines += ["", "![accuracy vs SNR](accuracy_vs_snr.png)", ""]

    lines += ["## 3. Streaming", "",
              "Long streams built from the split's clips: each clip inserted whole into continuous background noise "
              f"with random gaps of {stream['gap_s'][0]}–{stream['gap_s'][1]} s, run stride by stride through the "
              "host mirror of the firmware loop (streaming microfrontend, int8 window, model every "
              f"{stream['inference_every_strides']} stride(s)), and the firmware's own recognizer (C) over the "
              "scores. A detection is a hit when it names a keyword spoken between the word's start and "
              f"{stream['tolerance_ms']} ms after its end (word = voiced part of the clip); every other detection is "
              "a false accept.", "", "| stream | minutes | SNR (dB) | words inserted | distinct clips | background |",
              "|---|---|---|---|---|---|"]
    for s in stream["streams"]:
        lines.append(f"| {s['name']} | {s['minutes']} | {_fmt(s['snr_db'], 1)} | {s['events']} | "
                     f"{s['distinct_clips']} | {', '.join(s['background']) or 'none (clean)'} |")
    setting = stream["setting"]
    thresholds = dict(zip(model["labels"], setting["thresholds"], strict=True)) if setting.get("thresholds") else {}
    per_keyword = ", ".join(f"{k} {t}" for k, t in thresholds.items() if k in op["per_keyword"])
    if stream.get("other_words"):
        lines += ["", f"The non-keyword stream also holds {stream['other_word_clips']} clips of other words from "
                  f"{', '.join(stream['other_words'])} (the split's speakers only)."]
    lines += ["", f"Configured recognizer: thresholds {per_keyword or setting['threshold']} (others "
              f"{setting['threshold']}), average window "
              f"{setting['average_window_ms']} ms, suppression {setting['suppression_ms']} ms, minimum count "
              f"{setting['minimum_count']}.", "",
              "| stream | keywords | missed | FRR (95% CI) | false accepts | FA/h (95% CI) | kinds | delay median / p90 (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, row in stream["per_stream"].items():
        delay = row["delay_ms"]
        lines.append(f"| {name} | {row['keywords']} | {row['missed']} | {_fmt(row['frr'])} ({_ci(row['frr_ci95'])}) | "
                     f"{row['false_accepts']} | {_fmt(row['fa_per_hour'])} ({_ci(row['fa_per_hour_ci95'])}) | "
                     f"{', '.join(f'{k} {v}' for k, v in row['false_accepts_by_kind'].items()) or '-'} | {_fmt(delay['median'], 0)} / {_fmt(delay['p90'], 0)} |")
    own = op["keyword_stream_false_accepts"]
    lines += ["", f"**Operating point**: false-reject rate {_fmt(op['frr'])} ({_ci(op['frr_ci95'])}) on the keyword "
              f"stream, where detecting the wrong keyword counts as a miss; {_fmt(op['fa_per_hour'])} false accepts "
              f"per hour ({_ci(op['fa_per_hour_ci95'])}) on the non-keyword stream (other speech and noise, "
              f"{op['hours'] * 60:.1f} min), caused by {op['false_accept_clips']} of its {op['distinct_clips']} "
              "distinct clips (each is replayed many times, so the interval is the wider of the exact Poisson one and "
              "a bootstrap over the clips). The keyword stream's own false accepts: "
              f"{own['count']} "
              f"({_fmt(own['per_keyword'])} per keyword spoken"
              + (f"; {', '.join(f'{k} {v}' for k, v in own['by_kind'].items())}" if own["by_kind"] else "") + ").",
              "", "Per keyword: " + ", ".join(f"{k} {v['detected']}/{v['inserted']}"
                                             for k, v in op["per_keyword"].items()) + " detected.", "",
              f"Detection delay is detection time minus the end of the word, over the {op['delay_ms']['hits']} hits. "
              f"FA/h resolution: one false accept in these {op['hours'] * 60:.1f} min of non-keyword stream is "
              f"{1 / op['hours']:.1f}/h; showing the target ({stream['fa_per_hour_target']}/h) met takes at least "
              f"{minutes_to_resolve(stream['fa_per_hour_target'])} min (--stream-minutes).", "", "![DET curve](det.png)", ""]
    lines += streaming_evidence(stream, op, thresholds)

    measured = cost.get("measured")
    if cost["source"] == "measured":
        m4 = cost["m4"]
        agree = m4["agreement"]
        lines += ["## 4. Device cost (measured on a Cortex-M4)", "",
                  f"Executed instructions of the firmware's own front end and model runner with {m4['library']} "
                  f"({m4['build']}) under QEMU (`kws m4`, m4_measurement.json), {agree['clips']} clips of "
                  f"{m4['clips']['source']}: features and int8 outputs identical to the host's on "
                  f"{agree['outputs_identical']}/{agree['clips']}. Time at {cost['clock_hz'] / 1e6:.0f} MHz assuming "
                  f"{cost['cycles_per_instruction']} cycles per instruction, ±{cost['uncertainty']:.0%} (QEMU "
                  "counts instructions, not cycles). The estimate from the .tflite alone (`kws.cost.estimate`) is beside each "
                  "layer.", ""]
    else:
        errors = ", ".join(f"{kind} {error:.0%}" for kind, error in cost["estimate_error"].items())
        lines += ["## 4. Device cost (estimated)", "",
                  f"From the .tflite alone (`kws.cost.estimate`): instructions per layer from rates fitted to counts of the "
                  f"pinned TFLM library on a Cortex-M4 (docs/cost_model.md; largest error on a candidate left out "
                  f"of the fit: {errors}); time at {cost['clock_hz'] / 1e6:.0f} MHz assuming "
                  f"{cost['cycles_per_instruction']} cycles per instruction, ±{cost['uncertainty']:.0%}. "
                  f"`kws m4` measures the model itself.", ""]
    lines += ["| op | MACs | instructions | estimate | µs | calibrated |", "|---|---|---|---|---|---|"]
    for row in cost["ops"]:
        lines.append(f"| {row['op']} | {row['macs']:,} | {row['instructions']:,} | {row['estimated']:,} | {row['us']} | "
                     f"{'yes' if row['calibrated'] else 'no (generic guess)'} |")
    lines += [f"| **total** | {cost['macs']:,} | {cost['instructions']:,} | {cost['estimated_instructions']:,} | "
              f"{cost['inference_us']} | |", "",
              f"Front end: {cost['frontend_us_per_stride']} µs per stride; the model runs "
              f"every {cost['inference_every_strides']} stride(s) ({cost['period_ms']} ms). CPU duty cycle "
              f"{cost['duty_cycle']:.1%}; {cost['inference_uj']} µJ per inference; average power "
              f"{cost['average_mw']} mW (board model: {cost['board']['voltage']} V, {cost['board']['active_ma']} mA "
              f"active, {cost['board']['idle_ma']} mA idle; docs/energy.md).", ""]
    if measured:
        lines += [f"Measured by `kws bench` (timing `{measured['timing']}`"
                  + (", host wall-clock: says nothing about the M4" if measured["timing"] == "host" else "")
                  + f", {measured['clips']} clips): inference p50 {measured['inference_us_p50']} µs "
                  f"(estimated {cost['inference_us']} µs), front end p50 per clip "
                  f"{measured['frontend_us_p50_per_clip']} µs = {measured['frontend_us_per_stride']} µs per stride "
                  f"(estimated {cost['frontend_us_per_stride']} µs).", ""]
    if measured and measured.get("power"):  # `kws bench --power`: measured energy beside this estimate
        from kws.device import power

        lines.append(power.markdown(measured["power"], power.compare(measured["power"], cost["inference_uj"],
                                                                      cost["average_mw"])))
    lines += ["![latency](latency.png)", ""]

    lines += ["## 5. Memory", "",
              f"Model parts are exact; the rest are estimates (±{memory['estimate_uncertainty']:.0%}; see "
              "`kws/memory.py` for the basis) until `pio run` reports the real totals.", "",
              "| flash | bytes | |", "|---|---|---|"]
    for part in memory["flash"]["parts"]:
        lines.append(f"| {part['part']} | {part['bytes']:,} | {'estimate' if part['estimate'] else 'exact'} |")
    flash, ram = memory["flash"], memory["ram"]
    lines += [f"| **total** | {flash['total_bytes']:,} | {flash['board_share']:.0%} of {flash['board_bytes']:,} |",
              "", "| RAM | bytes | |", "|---|---|---|"]
    for part in ram["parts"]:
        lines.append(f"| {part['part']} | {part['bytes']:,} | {'estimate' if part['estimate'] else 'exact'} |")
    lines += [f"| **total** | {ram['total_bytes']:,} | {ram['board_share']:.0%} of {ram['board_bytes']:,} |", ""]
    return "\n".join(lines)
