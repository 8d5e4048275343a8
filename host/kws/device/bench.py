"""`kws bench`: accuracy, latency, throughput and energy of the model as the board runs it, on labelled clips.

Each clip goes through host-stream mode as CLIP_BEGIN, AUDIO..., CLIP_END: the board resets its front end, window
and recognizer, so a clip is scored exactly like a training clip (`tests/test_sim.py` checks the virtual board's
model input equals the training features), and answers RESULT with its class and per-stage timings.

Energy comes from the board power model in the config (`[board]`, sources in docs/energy.md) via `kws.cost.estimate.energy`:
on a real board (timing=dwt) with the measured median inference time, on the virtual board (timing=host, where
host time says nothing about the M4) with its `est_m4_us`: the model's instructions per inference, counted on a
Cortex-M4 by `kws m4` when the model has an m4_measurement.json (HELLO's est_m4=measured), else estimated by
`kws.cost.estimate`, at the config's cycles per instruction.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from kws.board.protocol import FrameType as F
from kws.board.protocol import Message, clip_payload, split_audio
from kws.common.paths import REPO_ROOT
from kws.config import Config
from kws.data import dataset as data
from kws.data.clips import DEFAULT_SCORING_SPLIT
from kws.device import power as power_meter
from kws.device.link import Connection
from kws.device.monitor import percentile
from kws.evaluation.evaluate import ModelDir, confusion, format_confusion

RESULT_TIMEOUT_S = 30.0
STAGES = ("fe_us", "inf_us", "step_us")
# What each RESULT field times (firmware/src/pipeline.cpp). The three are not parts of one sum: the front end runs
# stride by stride while the clip streams in, and CLIP_END's step holds only what is left, so step_us is often
# smaller than fe_us.
STAGE_MEANINGS = {
    "fe_us": "the front end over the whole clip: every stride's front end (and the microfrontend's feature "
             "scaling), summed as the clip streamed in (per stride: divide by the window's slices)",
    "inf_us": "the one inference on the clip's window (with the MLPerf MFCCs, computing the window's MFCCs too)",
    "step_us": "CLIP_END's own work: the audio still buffered through the front end (the board: under a stride; "
               "the virtual board: none), then the inference",
}
# Where the virtual board's est_m4_us comes from, by HELLO's est_m4
EST_M4_SOURCES = {"measured": "Cortex-M4 instructions measured by kws m4 (the model's m4_measurement.json)",
                  "estimated": "Cortex-M4 instructions estimated by kws.cost.estimate"}


def bench_clips(config: Config, source: str | Path, split: str, limit: int | None = None, seed: int = 0) -> data.Clips:
    """The clips `kws eval` scores on the same folder and split (`data.select_clips`: the same selection and the
    same rule for a bad file, which is skipped, named and counted). With a limit, a seeded random sample of them, so
    a class-sorted folder still gives every class a share."""
    clips = data.select_clips(config, [source], split)
    if limit is not None and limit < len(clips.targets):
        clips = clips.subset(sorted(np.random.default_rng(seed).choice(len(clips.targets), size=limit, replace=False)))
    return clips


def board_config(hello: Message, model: str | None) -> Config:
    """The config of the model the board runs: from --model, else models/<name from HELLO>."""
    if model is None:
        name = hello.fields.get("model", "")
        candidates = [Path("models") / name, REPO_ROOT / "models" / name]
        found = next((path for path in candidates if (path / "config.toml").exists()), None)
        if found is None:
            raise FileNotFoundError(f"the board runs model '{name}', but no models/{name}/config.toml was found "
                                    "here or in the repository: pass --model DIR")
        model = str(found)
    config = ModelDir(model).config
    board_labels = hello.get_list("labels")
    if board_labels != list(config.labels):
        raise ValueError(f"the board's labels {board_labels} differ from {model}'s {list(config.labels)}: "
                         "--model must be the model the board runs")
    return config


def run_clips(connection: Connection, clips: data.Clips, out: TextIO) -> list[Message]:
    """Sends every clip and collects its RESULT line, in order."""
    results = []
    for clip_id, (samples, path) in enumerate(zip(clips.audio, clips.paths, strict=True)):
        connection.send(F.CLIP_BEGIN, clip_payload(clip_id))
        for payload in split_audio(samples.astype("<i2").tobytes()):
            connection.send(F.AUDIO, payload)
        connection.send(F.CLIP_END, clip_payload(clip_id))
        results.append(connection.wait_for(lambda m, i=clip_id: m.tag == "RESULT" and m.fields.get("clip") == str(i),
                                           RESULT_TIMEOUT_S, f"RESULT of clip {clip_id} ({path})"))
        if (clip_id + 1) % 50 == 0:
            print(f"{clip_id + 1}/{len(clips.targets)} clips", file=out, flush=True)
    return results


def summarize(config: Config, hello: Message, clips: data.Clips, results: list[Message], seconds: float) -> dict:
    """accuracy, confusion, latency percentiles, throughput and energy as one JSON-able dict."""
    from kws.cost.estimate import energy

    targets = clips.targets
    predictions = np.array([result.get_int("idx") for result in results], np.int64)
    latency = {stage: {f"p{q}": percentile([r.get_int(stage) for r in results], q) for q in (50, 90, 99)}
               for stage in STAGES}
    timing = hello.fields.get("timing", "dwt")
    if timing == "host":
        source = EST_M4_SOURCES.get(hello.fields.get("est_m4", ""), "source not given by the virtual board")
        inference_us = float(results[0].get_int("est_m4_us"))
        inference_source = f"est_m4_us: {source}, at the config's cycles per instruction"
    else:
        inference_us, inference_source = float(latency["inf_us"]["p50"]), "measured inf_us p50"
    rec = config.recognizer
    power = energy(config.board, inference_us, config.frontend.stride_ms, rec.inference_every_strides)
    return {
        "board": {key: hello.fields.get(key) for key in ("model", "model_id", "fw", "timing", "clock_hz")},
        "accuracy": confusion(config.labels, targets, predictions),
        "latency_us": latency,
        "throughput_clips_per_s": round(len(targets) / seconds, 2),
        "energy": {"inference_us": round(inference_us, 1), "inference_us_source": inference_source,
                   "inference_uj": round(power.inference_uj, 2), "duty_cycle": round(power.duty_cycle, 4),
                   "average_mw": round(power.average_mw, 3),
                   "inferences_per_s": round(1000 / (config.frontend.stride_ms * rec.inference_every_strides), 2),
                   "board": {"voltage": config.board.voltage, "active_ma": config.board.active_ma,
                             "idle_ma": config.board.idle_ma, "clock_hz": config.board.clock_hz}},
        "data": {"sources": clips.sources, "split": clips.split, "skipped": clips.skipped},
        "clips": [{"path": str(path), "target": config.labels[target], "label": result.fields["label"],
                   **{stage: result.get_int(stage) for stage in STAGES}}
                  for path, target, result in zip(clips.paths, targets, results, strict=True)],
    }


def markdown(summary: dict) -> str:
    accuracy, latency, power = summary["accuracy"], summary["latency_us"], summary["energy"]
    rows = "\n".join(f"| {stage} | {STAGE_MEANINGS[stage]} | {values['p50']} | {values['p90']} | {values['p99']} |"
                     for stage, values in latency.items())
    board = summary["board"]
    return f"""# Benchmark: {board['model']} ({board['model_id']})

Firmware {board['fw']}, timing `{board['timing']}` (`host`: the virtual board, wall-clock times of the host).

Accuracy {accuracy['accuracy']} on {accuracy['clips']} clips (95% CI {accuracy['ci95']}).

```
{format_confusion(accuracy)}
```

Per clip (each field of the board's RESULT; not parts of one sum):

| stage | what it times | p50 (us) | p90 (us) | p99 (us) |
|---|---|---|---|---|
{rows}

Throughput: {summary['throughput_clips_per_s']} clips/s.

Energy (board power model, docs/energy.md): {power['inference_uj']} uJ per inference of {power['inference_us']} us
({power['inference_us_source']}); average {power['average_mw']} mW at {power['inferences_per_s']} inferences/s
(CPU busy {power['duty_cycle']:.1%} of the time).
""" + (power_meter.markdown(summary["power"]) if "power" in summary else "")


def plot(summary: dict, report: Path) -> None:
    from kws.evaluation import plots

    accuracy = summary["accuracy"]
    plots.confusion(accuracy, f"{summary['board']['model']} on the board: accuracy {accuracy['accuracy']} "
                              f"({accuracy['clips']} clips)", report / "confusion.png")
    plots.histograms({stage: [clip[stage] for clip in summary["clips"]] for stage in STAGES}, "µs",
                     f"latency per clip (timing={summary['board']['timing']})", report / "latency.png")


def run(port: str | None, source: str, report: str | None, limit: int | None, model: str | None,
        out: TextIO | None = None, split: str = DEFAULT_SCORING_SPLIT,
        power_setup: power_meter.PowerSetup | None = None) -> int:
    """`kws bench`; returns the exit status. With power_setup, also measured energy from a power monitor."""
    out = out or sys.stdout
    measurement = None
    with contextlib.ExitStack() as resources:
        monitor = None
        if power_setup is not None:
            monitor = power_meter.open_monitor(power_setup)
            resources.callback(monitor.close)
            power_meter.wait_for_board(port)  # a source meter may have just switched the board on
        connection = resources.enter_context(Connection(port, notice=lambda text: print(text, file=out, flush=True)))
        hello = connection.handshake()
        config = board_config(hello, model)
        clips = bench_clips(config, source, split, limit)
        print(f"benchmarking {hello.fields.get('model')} on {connection.port} with {clips.describe()}", file=out,
              flush=True)
        if monitor is None:
            start = time.monotonic()
            results = run_clips(connection, clips, out)
            seconds = time.monotonic() - start
            connection.send(F.BYE)
        else:
            results, seconds, measurement = power_meter.measure(
                power_setup, monitor, connection, lambda: run_clips(connection, clips, out), out)
    summary = summarize(config, hello, clips, results, seconds)
    if measurement is not None:
        summary["power"] = power_meter.with_estimate(measurement.summary, summary["energy"])
    print(markdown(summary), file=out, flush=True)
    if report:
        folder = Path(report)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
        (folder / "bench.md").write_text(markdown(summary))
        plot(summary, folder)
        figures = ["confusion.png", "latency.png"] + (power_meter.plot(measurement, folder) if measurement else [])
        print(f"report in {folder}: bench.json, bench.md, {', '.join(figures)}", file=out, flush=True)
    return 0
