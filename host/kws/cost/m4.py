"""`kws m4`: what the board computes and what it costs, from the firmware's own code on a Cortex-M4 under QEMU.

The firmware's feature provider and model runner, kws_core and one exported model are built with the pinned TFLM
Arduino library and the board build's flags into a bare-metal image for QEMU's mps2-an386
(`firmware/test/m4_model`). The library is the user's copy (where `pio pkg install` puts it) or a snapshot in an
ignored folder; it is never part of this repository. Each clip goes through the image as host-stream mode runs it
(front end reset, 20 ms strides, one inference), which returns the int8 feature window, the int8 outputs and
executed-instruction counts: per front-end stride, per inference and per layer. The host computes the same clips
through its device-equivalent path (`kws.board.pipeline.StreamingPipeline`: the front end's C, the firmware's scaling,
the TFLM Python runtime); the two must agree byte for byte.

Here: the host's side, the comparison and the instruction counts and schedule (`measure`), and the command (`run`).
The image is built and run by `kws.cost.m4_image`; the result goes to `m4_measurement.json` (`kws.cost.m4_record`),
which the model card, the report and the cost model's calibration read.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

from kws.common.paths import shown
from kws.cost.m4_image import (
    COUNT_FIELDS,
    Library,
    M4Error,
    M4Run,
    StreamRun,
    build_image,
    code_bytes,
    compiler_version,
    emulator_version,
    run_image,
    run_stream,
)
from kws.cost.m4_record import MEASUREMENT_FILE, SCHEDULE_HEADROOM, all_identical, card_summary, summary_lines

# The stream `kws m4 --stream-seconds` builds: the selected keyword and unknown clips over the selection's own
# silence clips as background, at this SNR, from this seed (the same stream for the same data).
STREAM_SNR_DB = 10.0
STREAM_SEED = 0


def stream_audio(config: object, clips: object, seconds: float) -> np.ndarray:
    """A recording of `seconds` built reproducibly from the selected clips: their keyword and unknown clips
    inserted 1.5-3 s apart over a loop of their silence clips (the data's own background), at STREAM_SNR_DB."""
    from kws.evaluation import stream_build

    labels = config.labels
    speech = [i for i, t in enumerate(clips.targets) if labels[t] != "silence"]
    keyword = [i for i in speech if labels[clips.targets[i]] in config.keywords.words]
    noise = [clips.audio[i] for i, t in enumerate(clips.targets)
             if labels[t] == "silence" and np.any(clips.audio[i])]
    if not keyword or not noise:
        raise M4Error("a stream needs keyword clips and silence clips with some noise in them in the selection")
    rng = np.random.default_rng(STREAM_SEED)
    stream = stream_build.build_stream("m4", [clips.audio[i] for i in speech], [clips.targets[i] for i in speech],
                                       noise, seconds / 60, config.audio.sample_rate, STREAM_SNR_DB,
                                       stream_build.reference_rms([clips.audio[i] for i in keyword]), rng)
    return stream.audio[0:len(stream.audio)]


def host_stream_reference(model_dir: object, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """The host's streaming pipeline fed stride by stride, as the image's stream mode runs the board's: which strides
    ran an inference, its int8 outputs, and the detections as (stride, host time ms, label, score)."""
    from kws.board.pipeline import StreamingPipeline

    pipeline = StreamingPipeline(model_dir)
    stride = pipeline.config.stride_samples
    strides = len(audio) // stride
    inferred = np.zeros(strides, bool)
    outputs = np.zeros((strides, len(pipeline.labels)), np.int8)
    detections = []
    for i in range(strides):
        for step in pipeline.feed(audio[i * stride:(i + 1) * stride]):
            inferred[i], outputs[i] = True, step.output
            if step.detection is not None:
                detections.append((i, step.time_ms, step.detection.label_index, step.detection.score))
    return inferred, outputs, detections


def stream_agreement(board: StreamRun, host: tuple[np.ndarray, np.ndarray, list], stride_samples: int,
                     sample_rate: int) -> dict:
    """Inference by inference and detection by detection, how the board's stream compares with the host's. The
    board stamps a detection with the audio time at the end of the stride it ran in (whole strides go through its
    front end); the host pipeline with the end of the slice, which is earlier by the window's part of a stride:
    detections are compared on the board's clock, and the difference is recorded."""
    inferred, outputs, detections = host
    both = board.inferred & inferred
    on_board_clock = [((i + 1) * stride_samples * 1000 // sample_rate, label, score)
                      for i, _, label, score in detections]
    offsets = sorted({(i + 1) * stride_samples * 1000 // sample_rate - t for i, t, _, _ in detections})
    board_detections = [tuple(d) for d in board.detections]
    return {
        "seconds": round(len(inferred) * stride_samples / sample_rate, 2),
        "strides": len(inferred),
        "inferences": int(board.inferred.sum()),
        "host_inferences": int(inferred.sum()),
        "same_inference_strides": bool(np.array_equal(board.inferred, inferred)),
        "outputs_identical": int(np.all(board.outputs[both] == outputs[both], axis=1).sum()),
        "detections": len(board_detections),
        "host_detections": len(on_board_clock),
        "detections_identical": board_detections == on_board_clock,
        "host_clock_behind_ms": offsets,
        "all_identical": bool(np.array_equal(board.inferred, inferred) and np.array_equal(board.outputs, outputs)
                              and board_detections == on_board_clock),
    }


def stream_summary(run: StreamRun, agreement: dict) -> dict:
    """The stream's record: agreement, and instructions per stride of a continuous stream (strides without an
    inference: front end and pipeline) and per inference."""
    plain = run.stride_instructions[~run.inferred]
    return {**agreement,
            "instructions": {"per_stride_without_inference": {"mean": round(float(plain.mean())),
                                                               "max": int(plain.max())},
                             "per_inference": {"median": int(np.median(run.inference_instructions[run.inferred])),
                                               "max": int(run.inference_instructions.max())}}}


def host_reference(model_dir: object, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The host's int8 windows and outputs for the same clips, through the virtual board's pipeline."""
    from kws.board.pipeline import StreamingPipeline

    pipeline = StreamingPipeline(model_dir)
    windows, outputs = [], []
    for clip in clips:
        pipeline.reset()
        pipeline.feed(clip)
        window = pipeline.window()
        windows.append(window.reshape(-1))
        outputs.append(pipeline.model.predict(window[np.newaxis])[0])
    return np.array(windows, np.int8), np.array(outputs, np.int8)


def agreement(run: M4Run, host_windows: np.ndarray, host_outputs: np.ndarray) -> dict:
    """How many clips the board and the host computed identically."""
    same_windows = np.all(run.windows == host_windows, axis=1)
    same_outputs = np.all(run.outputs == host_outputs, axis=1)
    difference = np.abs(run.outputs.astype(np.int16) - host_outputs.astype(np.int16))
    return {
        "clips": len(run.outputs),
        "features_identical": int(same_windows.sum()),
        "outputs_identical": int(same_outputs.sum()),
        "top1_identical": int(np.sum(run.outputs.argmax(1) == host_outputs.argmax(1))),
        "max_output_difference": int(difference.max(initial=0)),
        "all_identical": bool(same_windows.all() and same_outputs.all()),
    }


def instruction_summary(run: M4Run, tflite: bytes, inference_every_strides: int, clock_hz: int,
                        cycles_per_instruction: float) -> dict:
    """Per-layer, per-inference and per-stride instruction counts; the estimate beside each layer; the schedule."""
    from kws.cost.estimate import estimate_model

    estimate = estimate_model(tflite)
    if [op.op for op in estimate.ops] != run.layers:
        raise M4Error(f"the image ran layers {run.layers}, the model has {[op.op for op in estimate.ops]}")
    counts = {field: run.counts[:, i].astype(np.int64) for i, field in enumerate(COUNT_FIELDS)}
    layer_median = np.median(run.layer_instructions, axis=0)
    layers = [{"op": op.op, "macs": op.macs, "instructions": int(measured),
               "instructions_per_mac": round(measured / op.macs, 3) if op.macs else None,
               "estimated": op.instructions}
              for op, measured in zip(estimate.ops, layer_median, strict=True)]
    inference = int(np.median(counts["inference_instructions"]))
    # A continuous stream makes a slice every stride; a reset clip's first stride only fills the front end's window
    # (~0.4 k instructions), so the mean over all strides of reset clips understates a stride of the stream.
    stride = float(np.sum(counts["frontend_slice_instructions"]) / np.sum(counts["frontend_slices"]))
    with_reset = float(np.sum(counts["frontend_instructions"]) / np.sum(counts["frontend_strides"]))
    stride_max = int(counts["frontend_max_stride"].max())
    return {
        "per_inference": {"median": inference, "max": int(counts["inference_instructions"].max()),
                          "estimated": estimate.instructions},
        "per_frontend_stride": {"mean": round(stride), "max": stride_max,
                                "mean_with_reset_clips_first_strides": round(with_reset)},
        "layers": layers,
        "schedule": {**schedule(inference, stride, inference_every_strides, clock_hz, cycles_per_instruction),
                     "recommended_every_strides": smallest_schedule(inference, stride, clock_hz,
                                                                    cycles_per_instruction, SCHEDULE_HEADROOM)},
    }


def schedule(inference: float, stride: float, every: int, clock_hz: int, cycles_per_instruction: float,
             stride_ms: float = 20.0) -> dict:
    """CPU load of running the front end every stride and the model every `every` strides, from instruction
    counts at an assumed cycles-per-instruction; headroom is the share of the period left over."""
    period_cycles = clock_hz * stride_ms / 1000 * every
    busy = (inference + every * stride) * cycles_per_instruction
    return {"inference_every_strides": every, "cycles_per_instruction": cycles_per_instruction,
            "busy_cycles_per_period": round(busy), "period_cycles": round(period_cycles),
            "load": round(busy / period_cycles, 3), "headroom": round(1 - busy / period_cycles, 3)}


def smallest_schedule(inference: float, stride: float, clock_hz: int, cycles_per_instruction: float,
                      headroom: float = 0.2, stride_ms: float = 20.0) -> int:
    """The most frequent inference (fewest strides apart) that leaves `headroom` of the CPU free."""
    every = 1
    while schedule(inference, stride, every, clock_hz, cycles_per_instruction, stride_ms)["headroom"] < headroom:
        every += 1
        if every > 50:
            raise M4Error(f"the front end alone ({stride:.0f} instructions per stride) leaves no {headroom:.0%} "
                          f"headroom")
    return every


def measure(model_path: str | Path, library_path: str | Path, clips: np.ndarray, clip_source: str, opt: str,
            float_abis: list[str], stream: np.ndarray | None = None) -> dict:
    """Builds and runs the check for one model on the clips (and the stream, if any); the measurement as
    m4_measurement.json holds it. The first float ABI is measured in full; each further one (the mbed core's own
    softfp beside the board build's soft) is built and checked for agreement with the host too."""
    from kws.evaluation.evaluate import ModelDir

    model_dir = ModelDir(model_path)
    library = Library.at(library_path)
    tflite = model_dir.tflite
    config = model_dir.config
    board = config.board
    print("computing the clips on the host", file=sys.stderr)
    host_windows, host_outputs = host_reference(model_dir, clips)
    host_stream = None
    if stream is not None:
        print(f"streaming {len(stream) / config.audio.sample_rate:.0f} s on the host", file=sys.stderr)
        host_stream = host_stream_reference(model_dir, stream)
    builds = []
    for float_abi in float_abis:
        image = build_image(library, model_dir.path, opt, float_abi)
        print(f"running {len(clips)} clips on the Cortex-M4 (QEMU, -mfloat-abi={float_abi})", file=sys.stderr)
        run = run_image(image, clips)
        build = {"float_abi": float_abi, "image": image, "run": run,
                 "agreement": agreement(run, host_windows, host_outputs)}
        if stream is not None:
            print(f"running the stream on the Cortex-M4 (QEMU, -mfloat-abi={float_abi})", file=sys.stderr)
            stream_run = run_stream(image, stream)
            build["stream"] = stream_summary(stream_run, stream_agreement(
                stream_run, host_stream, config.stride_samples, config.audio.sample_rate))
        builds.append(build)
    first = builds[0]
    measurement = {
        "model": {"name": config.name, "tflite_md5": hashlib.md5(tflite).hexdigest(),
                  "tflite_bytes": len(tflite),
                  "settings_md5": hashlib.md5((model_dir.path / "model_settings.h").read_bytes()).hexdigest()},
        "library": {"name": library.name, "version": library.version},
        "build": {"compiler": compiler_version(), "opt": opt, "float_abi": first["float_abi"],
                  "flags": "the mbed core's for ARDUINO_NANO33BLE (firmware/test/m4_model/Makefile)"},
        "emulator": f"{emulator_version()}, mps2-an386, -icount shift=0, SysTick count x 40",
        "clips": {"count": len(clips), "source": clip_source},
        "agreement": first["agreement"],
        "instructions": instruction_summary(first["run"], tflite, config.recognizer.inference_every_strides,
                                            board.clock_hz, board.cycles_per_instruction),
        "memory": {**first["run"].facts, "arena_bytes": _header_value(model_dir.path, "KWS_ARENA_SIZE"),
                   "code_bytes": code_bytes(first["image"].with_suffix(".map"))},
    }
    if stream is not None:
        measurement["stream"] = {"source": f"{clip_source}: keyword and unknown clips over its silence clips, "
                                           f"{STREAM_SNR_DB:g} dB SNR, seed {STREAM_SEED}", **first["stream"]}
    if len(builds) > 1:
        measurement["other_builds"] = [
            {"opt": opt, "float_abi": build["float_abi"], "agreement": build["agreement"],
             "instructions_per_inference": int(np.median(build["run"].counts[:, COUNT_FIELDS.index(
                 "inference_instructions")])),
             **({"stream": build["stream"]} if "stream" in build else {})}
            for build in builds[1:]]
    return measurement


def _header_value(model_dir: Path, name: str) -> int:
    header = model_dir / "model_settings.h"
    match = re.search(rf"^#define {name} (\d+)$", header.read_text(), flags=re.M)
    if match is None:
        raise M4Error(f"{header}: no {name}")
    return int(match.group(1))


def run(model: str, library: str, data: str, split: str, limit: int | None, save: bool, out: str | None,
        opt: str, float_abis: str | list[str], stream_seconds: float = 0, command: str | None = None) -> int:
    """`kws m4`: measure, print, and write the measurement (to the model folder and its card only with --save;
    `command` goes into the card's recipe). `float_abis`: one, or several (the first is measured in full)."""
    from kws.common.paths import repo_relative
    from kws.device.bench import bench_clips
    from kws.evaluation.evaluate import ModelDir

    model_dir = ModelDir(model)
    selected = bench_clips(model_dir.config, data, split, limit)
    print(selected.describe(), file=sys.stderr)
    if not selected.audio:
        raise M4Error(f"{data}: no clips to run")
    stream = stream_audio(model_dir.config, selected, stream_seconds) if stream_seconds else None
    measurement = measure(model, library, np.stack(selected.audio), f"{repo_relative(data)} ({split})", opt,
                          [float_abis] if isinstance(float_abis, str) else float_abis, stream)
    print("\n".join(summary_lines(measurement, f"{shown(data)} ({split})")))
    targets = ([Path(model) / MEASUREMENT_FILE] if save else []) + ([Path(out)] if out else [])
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(measurement, indent=2) + "\n")
        print(f"wrote {shown(target)}", file=sys.stderr)
    if save:
        from kws.training.export import update_card

        update_card(model_dir.path, {"m4": card_summary(measurement)}, command)
    return 0 if all_identical(measurement) else 1
