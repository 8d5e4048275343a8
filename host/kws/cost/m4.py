"""`kws m4`: what the board computes and what it costs, from the firmware's own code on a Cortex-M4 under QEMU.

The firmware's feature provider and model runner, kws_core and one exported model are built with the pinned TFLM
Arduino library and the board build's flags into a bare-metal image for QEMU's mps2-an386
(`firmware/test/m4_model`). The library is the user's copy (where `pio pkg install` puts it) or a snapshot in an
ignored folder; it is never part of this repository. Each clip goes through the image as host-stream mode runs it
(front end reset, 20 ms strides, one inference), which returns the int8 feature window, the int8 outputs and
executed-instruction counts: per front-end stride, per inference and per layer. The host computes the same clips
through its device-equivalent path (`kws.board.pipeline.StreamingPipeline`: the microfrontend, the firmware's scaling,
the TFLM Python runtime); the two must agree byte for byte.

The result goes to `m4_measurement.json`, which the model card, the report and the cost model's calibration read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.common.paths import REPO_ROOT, TFLM_LIBRARY, shown
from kws.common.progress import Progress

HARNESS_DIR = REPO_ROOT / "firmware" / "test" / "m4_model"
MEASUREMENT_FILE = "m4_measurement.json"

CLIPS_MAGIC = b"KWSM4C1\0"
RESULTS_MAGIC = b"KWSM4R1\0"
# struct ClipCounts in model_check.cpp, in order.
COUNT_FIELDS = ("frontend_instructions", "frontend_strides", "frontend_slices", "frontend_max_stride",
                "inference_instructions", "frontend_slice_instructions")
STREAM_MAGIC = b"KWSM4S1\0"
STREAM_RESULTS_MAGIC = b"KWSM4T1\0"
# struct Detection in pipeline_stubs.h: t_ms, label, score.
DETECTION_FORMAT = "<IiI"
# The stream `kws m4 --stream-seconds` builds: the selected keyword and unknown clips over the selection's own
# silence clips as background, at this SNR, from this seed (the same stream for the same data).
STREAM_SNR_DB = 10.0
STREAM_SEED = 0
# -icount shift=0: one instruction per virtual nanosecond, so SysTick (25 MHz) counts every 40 instructions.
QEMU_COMMAND = ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0"]
# Instructions QEMU runs per wall-clock second here is in the hundreds of millions; a clip is about 8 million.
QEMU_SECONDS_PER_CLIP = 1.0
QEMU_SECONDS_MIN = 60.0
# Share of each inference period the schedule leaves free: the counts are instructions, cycles per instruction
# are assumed (±20%), and PDM and USB interrupts also take their share.
SCHEDULE_HEADROOM = 0.2
# The pinned library's source, for where PlatformIO's registry is out of reach (docs/cost_model.md).
LIBRARY_REPOSITORY = "https://github.com/spaziochirale/Chirale_TensorFlowLite"
LIBRARY_TAG = "v2.0.0"
# What the check Makefile echoes, indented, for each object and image it builds (progress counts these lines).
MAKE_STEP_PREFIX = "  "


class M4Error(RuntimeError):
    """The check could not run: no library, no toolchain, a failed build or emulator run. The message says which."""


@dataclass(frozen=True)
class Library:
    """A TFLM Arduino library folder: `library.properties` and `src/tensorflow/lite/micro/`."""

    path: Path
    name: str
    version: str

    @classmethod
    def at(cls, path: str | Path) -> Library:
        path = Path(path)
        properties = path / "library.properties"
        if not path.exists():
            raise M4Error(f"{shown(path)}: missing (no such folder). {install_hint()}")
        if not (path / "src" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
            raise M4Error(f"{shown(path)}: not a TFLM Arduino library (no src/tensorflow/lite/micro/micro_interpreter.h)."
                          f" {install_hint()}")
        if not properties.is_file():
            raise M4Error(f"{shown(properties)}: missing, so the library's version is unknown")
        fields = dict(line.split("=", 1) for line in properties.read_text().splitlines() if "=" in line)
        return cls(path, fields.get("name", "?").strip(), fields.get("version", "?").strip())


@dataclass(frozen=True)
class M4Run:
    """What the image reported for a batch of clips."""

    windows: np.ndarray  # int8 [clips, slices x channels]: the model input
    outputs: np.ndarray  # int8 [clips, labels]
    counts: np.ndarray  # uint32 [clips, len(COUNT_FIELDS)]
    layer_instructions: np.ndarray  # uint32 [clips, layers]
    layers: list[str]  # op name of each layer, execution order
    facts: dict[str, int]  # arena_used_bytes, frontend_heap_bytes, stack_bytes


def install_hint() -> str:
    """How to put the pinned library where `kws m4` looks: PlatformIO when its registry is reachable, else (offline)
    a clone at the pinned tag unpacked by git archive, as docs/cost_model.md describes."""
    target = shown(TFLM_LIBRARY.parent)
    return (f"Install the pinned one with `pio pkg install -e nano33ble` (needs PlatformIO's registry) or, offline, "
            f"from a clone of {LIBRARY_REPOSITORY}: `mkdir -p {target} && git -C CLONE archive "
            f"--prefix={TFLM_LIBRARY.name}/ {LIBRARY_TAG} | tar -x -C {target}`; or name a copy with --library DIR")


@dataclass(frozen=True)
class StreamRun:
    """What the image's stream mode reported, stride by stride."""

    stride_instructions: np.ndarray  # uint32 [strides]: pipeline_run of the stride (front end, and any inference)
    inference_instructions: np.ndarray  # uint32 [strides]: the Invoke()'s layers, 0 where no inference ran
    outputs: np.ndarray  # int8 [strides, labels]: where an inference ran
    detections: list[tuple[int, int, int]]  # (t_ms, label, score) as DET reports them
    facts: dict[str, int]

    @property
    def inferred(self) -> np.ndarray:
        return self.inference_instructions > 0


def _require(tools: list[str]) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise M4Error(f"{', '.join(missing)} not found: on Debian/Ubuntu `apt-get install gcc-arm-none-eabi "
                      f"libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm make`")


def build_image(library: Library, model_dir: Path, opt: str, float_abi: str) -> Path:
    """Builds the check image for one model; the library's objects are built once per flag set and reused."""
    print(f"building the check image for {model_dir.name} with {library.name} {library.version} ({opt}, "
          f"-mfloat-abi={float_abi}); the library's 215 sources take about 4 minutes on two cores, once per flag set",
          file=sys.stderr)
    return make_target("image", f"TFLM_LIB={library.path.resolve()}", f"MODEL_DIR={model_dir.resolve()}",
                       f"OPT={opt}", f"FLOAT_ABI={float_abi}", progress_label="building the check image")


def code_bytes(link_map: Path) -> dict[str, int]:
    """Code and constant data the image links from the TFLM library (its runtime and the kernels of the model's ops)
    and, apart, from the library's microfrontend and FFT: the linker map's .text, .rodata and .data input sections,
    which the board build links the same way (the map is written beside the image)."""
    text = link_map.read_text()
    text = text[text.index("Linker script and memory map"):]
    sizes = {"tflm_runtime_and_kernels": 0, "frontend": 0}
    pattern = r"^ (\.(?:text|rodata|data)\S*)\s*\n?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)"
    for match in re.finditer(pattern, text, flags=re.M):
        obj = match.group(3)
        if "mfcc" in Path(obj).name:  # the MLPerf MFCCs: kws_core's code and the tables the glue compiles in
            part = "frontend"
        elif "/lib-" not in obj:  # the image's other own objects: harness, glue, kws_core, model, newlib
            continue
        else:
            part = "frontend" if "microfrontend" in obj or "kissfft" in obj else "tflm_runtime_and_kernels"
        sizes[part] += int(match.group(2), 16)
    return sizes


def write_clips(path: Path, clips: np.ndarray) -> None:
    """The image's input: magic, clip count, samples per clip, then the int16 samples."""
    clips = np.ascontiguousarray(clips, dtype="<i2")
    with open(path, "wb") as out:
        out.write(CLIPS_MAGIC + struct.pack("<II", *clips.shape))
        out.write(clips.tobytes())


def parse_results(results: bytes, stdout: str) -> M4Run:
    """Reads results.bin (per clip: window, outputs, counts, layer count, per-layer instructions) and the facts
    the image prints once."""
    if results[:8] != RESULTS_MAGIC or len(results) < 20:
        raise M4Error("results.bin: not a KWSM4R1 results file")
    window_bytes, labels, clips = struct.unpack_from("<III", results, 8)
    offset = 20
    windows, outputs, counts, layer_instructions = [], [], [], []
    for clip in range(clips):
        fixed = window_bytes + labels + 4 * len(COUNT_FIELDS) + 4
        if offset + fixed > len(results):
            raise M4Error(f"results.bin: ends inside clip {clip} of {clips}")
        windows.append(np.frombuffer(results, np.int8, window_bytes, offset))
        outputs.append(np.frombuffer(results, np.int8, labels, offset + window_bytes))
        offset += window_bytes + labels
        counts.append(struct.unpack_from(f"<{len(COUNT_FIELDS)}I", results, offset))
        offset += 4 * len(COUNT_FIELDS)
        (layers,) = struct.unpack_from("<I", results, offset)
        if offset + 4 + 4 * layers > len(results):
            raise M4Error(f"results.bin: ends inside clip {clip}'s layer counts")
        layer_instructions.append(struct.unpack_from(f"<{layers}I", results, offset + 4))
        offset += 4 + 4 * layers
    if offset != len(results):
        raise M4Error(f"results.bin: {len(results) - offset} bytes after the last of {clips} clips")
    facts, names = {}, []
    for line in stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "layers":
            names = value.split()
        elif key.endswith("_bytes"):
            facts[key] = int(value)
    if len({len(row) for row in layer_instructions}) > 1 or (layer_instructions and
                                                             len(layer_instructions[0]) != len(names)):
        raise M4Error(f"the image named {len(names)} layers but counted a different number")
    return M4Run(np.array(windows, np.int8).reshape(clips, window_bytes), np.array(outputs, np.int8).reshape(clips, labels),
                 np.array(counts, np.uint32).reshape(clips, len(COUNT_FIELDS)),
                 np.array(layer_instructions, np.uint32).reshape(clips, len(names)), names, facts)


def write_stream(path: Path, audio: np.ndarray) -> None:
    """The stream mode's input: magic, sample count, the int16 samples."""
    audio = np.ascontiguousarray(audio, dtype="<i2")
    with open(path, "wb") as out:
        out.write(STREAM_MAGIC + struct.pack("<I", len(audio)))
        out.write(audio.tobytes())


def parse_stream_results(results: bytes, stdout: str) -> StreamRun:
    """Reads stream_results.bin (strides, labels; per stride: instructions, the inference's, int8 outputs; then the
    detections) and the facts the image prints."""
    if results[:8] != STREAM_RESULTS_MAGIC or len(results) < 16:
        raise M4Error("stream_results.bin: not a KWSM4T1 results file")
    strides, labels = struct.unpack_from("<II", results, 8)
    record = np.dtype([("instructions", "<u4"), ("inference", "<u4"), ("outputs", "i1", (labels,))])
    end = 16 + strides * record.itemsize
    if end + 4 > len(results):
        raise M4Error(f"stream_results.bin: ends inside the {strides} strides")
    records = np.frombuffer(results, record, strides, 16)
    (count,) = struct.unpack_from("<I", results, end)
    size = struct.calcsize(DETECTION_FORMAT)
    if end + 4 + count * size != len(results):
        raise M4Error(f"stream_results.bin: {len(results) - end - 4} bytes for {count} detections")
    detections = [struct.unpack_from(DETECTION_FORMAT, results, end + 4 + i * size) for i in range(count)]
    facts = {key: int(value) for key, _, value in (line.partition(" ") for line in stdout.splitlines())
             if key.endswith("_bytes")}
    return StreamRun(records["instructions"].copy(), records["inference"].copy(), records["outputs"].copy(),
                     detections, facts)


def run_stream(image: Path, audio: np.ndarray) -> StreamRun:
    """Runs the check image's stream mode under QEMU on one recording (int16)."""
    with tempfile.TemporaryDirectory(prefix="kws-m4-") as workdir:
        write_stream(Path(workdir) / "stream.bin", audio)
        seconds = len(audio) / 16000
        stdout = run_qemu(image, Path(workdir), max(QEMU_SECONDS_MIN, QEMU_SECONDS_PER_CLIP * seconds))
        return parse_stream_results((Path(workdir) / "stream_results.bin").read_bytes(), stdout)


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


def run_qemu(image: Path, workdir: Path, timeout: float) -> str:
    """Runs a semihosting image with workdir as its file system; its standard output."""
    _require(["qemu-system-arm"])
    try:
        done = subprocess.run([*QEMU_COMMAND, "-kernel", str(image)], cwd=workdir, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise M4Error(f"{image.name} did not finish under QEMU in {timeout:.0f} s") from error
    if done.returncode != 0:
        raise M4Error(f"{image.name} stopped with status {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def run_image(image: Path, clips: np.ndarray) -> M4Run:
    """Runs the check image under QEMU on the clips (int16 [n, samples])."""
    with tempfile.TemporaryDirectory(prefix="kws-m4-") as workdir:
        write_clips(Path(workdir) / "clips.bin", clips)
        stdout = run_qemu(image, Path(workdir), max(QEMU_SECONDS_MIN, QEMU_SECONDS_PER_CLIP * len(clips)))
        return parse_results((Path(workdir) / "results.bin").read_bytes(), stdout)


def make_target(target: str, *variables: str, progress_label: str | None = None) -> Path:
    """Builds a target of the check Makefile that echoes the image it made; that image. With `progress_label`,
    shows objects built of those out of date (a dry run counts them first), since the library alone takes minutes."""
    _require(["make", "arm-none-eabi-g++"])
    command = ["make", "-s", f"-j{os.cpu_count() or 1}", "-C", str(HARNESS_DIR), target, *variables]
    total = _build_steps(command) if progress_label else 0
    output: list[str] = []
    with Progress(total, progress_label or "", unit="objects", enabled=total > 0) as progress:
        # stderr joins stdout so that a compiler's message stays beside the object it is about.
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as make:
            assert make.stdout is not None
            for line in make.stdout:
                output.append(line)
                if line.startswith(MAKE_STEP_PREFIX):
                    progress.update()
        if make.returncode != 0:
            raise M4Error(f"building {target} for the Cortex-M4 failed:\n{''.join(output)[-3000:]}")
    return (HARNESS_DIR / output[-1].strip()).resolve()


def _build_steps(command: list[str]) -> int:
    """How many objects and images `command` would build: the step lines of make's dry run."""
    dry = subprocess.run([command[0], "-n", *command[1:]], capture_output=True, text=True)
    return sum(line.startswith(f"echo '{MAKE_STEP_PREFIX}") for line in dry.stdout.splitlines())


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


def compiler_version() -> str:
    return subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def emulator_version() -> str:
    return subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]


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


def all_identical(measurement: dict) -> bool:
    """Whether every build agreed with the host on every clip and on the stream."""
    records = [measurement, *measurement.get("other_builds", [])]
    return all(record["agreement"]["all_identical"] and record.get("stream", {}).get("all_identical", True)
               for record in records)


def _header_value(model_dir: Path, name: str) -> int:
    header = model_dir / "model_settings.h"
    match = re.search(rf"^#define {name} (\d+)$", header.read_text(), flags=re.M)
    if match is None:
        raise M4Error(f"{header}: no {name}")
    return int(match.group(1))


def load_measurement(model_dir: Path) -> dict | None:
    """The model's m4_measurement.json if it belongs to the model.tflite beside it; None if there is none."""
    path = model_dir / MEASUREMENT_FILE
    if not path.is_file():
        return None
    measurement = json.loads(path.read_text())
    md5 = hashlib.md5((model_dir / "model.tflite").read_bytes()).hexdigest()
    if measurement["model"]["tflite_md5"] != md5:
        raise M4Error(f"{path} measured another model (md5 {measurement['model']['tflite_md5']}, model.tflite has "
                      f"{md5}): run `kws m4 --model {model_dir} --data DIR --save` again")
    return measurement


def inference_instructions(model_dir: Path, tflite: bytes) -> tuple[int, str]:
    """Instructions per inference on the board: measured by `kws m4` when the model has a measurement of its own,
    else the cost model's estimate; and which of the two it is."""
    measurement = load_measurement(model_dir)
    if measurement is not None:
        return measurement["instructions"]["per_inference"]["median"], "measured (kws m4)"
    from kws.cost.estimate import estimate_model

    return estimate_model(tflite).instructions, "estimated (kws.cost.estimate)"


def card_summary(measurement: dict) -> dict:
    """What the model card keeps of a measurement (the whole of it is m4_measurement.json beside the card)."""
    counts = measurement["instructions"]
    return {"library": f"{measurement['library']['name']} {measurement['library']['version']}",
            "build": f"{measurement['build']['opt']} -mfloat-abi={measurement['build']['float_abi']}, "
                     f"{measurement['build']['compiler']}",
            "clips": measurement["clips"], "agreement": measurement["agreement"],
            "instructions_per_inference": counts["per_inference"]["median"],
            "instructions_per_frontend_stride": counts["per_frontend_stride"]["mean"],
            "schedule": counts["schedule"], "memory": measurement["memory"],
            **({"stream": {key: measurement["stream"][key] for key in
                           ("seconds", "inferences", "detections", "all_identical")}} if "stream" in measurement else {}),
            **({"other_builds": [{"float_abi": build["float_abi"], "all_identical": build["agreement"]["all_identical"]
                                  and build.get("stream", {}).get("all_identical", True)}
                                 for build in measurement["other_builds"]]} if "other_builds" in measurement else {})}


def summary_lines(measurement: dict, clip_source: str | None = None) -> list[str]:
    """What `kws m4` prints; `clip_source` names the clips as the user typed them (the measurement records them
    repository-relative)."""
    agree, counts = measurement["agreement"], measurement["instructions"]
    sched = counts["schedule"]
    lines = [
        f"{measurement['model']['name']} on {measurement['library']['name']} {measurement['library']['version']} "
        f"({measurement['build']['opt']}, -mfloat-abi={measurement['build']['float_abi']}), "
        f"{agree['clips']} clips of {clip_source or measurement['clips']['source']}",
        f"  identical to the host: features {agree['features_identical']}/{agree['clips']}, int8 outputs "
        f"{agree['outputs_identical']}/{agree['clips']}, top-1 {agree['top1_identical']}/{agree['clips']} "
        f"(largest output difference {agree['max_output_difference']})",
        f"  instructions per inference {counts['per_inference']['median']:,} (estimate "
        f"{counts['per_inference']['estimated']:,}); per 20 ms front-end stride of a continuous stream "
        f"{counts['per_frontend_stride']['mean']:,} (max {counts['per_frontend_stride']['max']:,})",
        f"  schedule: inference every {sched['inference_every_strides']} strides loads the CPU "
        f"{sched['load']:.0%} at {sched['cycles_per_instruction']} cycles/instruction (headroom {sched['headroom']:.0%})"
        + ("" if sched["headroom"] >= SCHEDULE_HEADROOM else
           f"; too little: set recognizer.inference_every_strides = {sched['recommended_every_strides']}, the most "
           f"frequent with {SCHEDULE_HEADROOM:.0%} headroom"),
        "  layer                 MACs   instructions  per MAC  estimate",
    ]
    for layer in counts["layers"]:
        per_mac = f"{layer['instructions_per_mac']:.2f}" if layer["instructions_per_mac"] else "-"
        lines.append(f"  {layer['op']:<18} {layer['macs']:>9,} {layer['instructions']:>13,} {per_mac:>8} "
                     f"{layer['estimated']:>9,}")
    memory = measurement["memory"]
    lines.append(f"  arena used {memory['arena_used_bytes']:,} of {memory['arena_bytes']:,} B; front-end heap "
                 f"{memory['frontend_heap_bytes']:,} B; stack high-water {memory['stack_bytes']:,} B")
    for record in [measurement, *measurement.get("other_builds", [])]:
        float_abi = record.get("float_abi") or record["build"]["float_abi"]
        if record is not measurement:
            agree = record["agreement"]
            lines.append(f"  -mfloat-abi={float_abi}: identical to the host: features {agree['features_identical']}/"
                         f"{agree['clips']}, int8 outputs {agree['outputs_identical']}/{agree['clips']}; "
                         f"{record['instructions_per_inference']:,} instructions per inference")
        if "stream" in record:
            lines.append(stream_line(record["stream"], float_abi))
    return lines


def stream_line(stream: dict, float_abi: str) -> str:
    """One line on a stream's agreement."""
    return (f"  stream ({float_abi}): {stream['seconds']:g} s, {stream['strides']} strides; inferences "
            f"{stream['outputs_identical']}/{stream['inferences']} identical (host {stream['host_inferences']}); "
            f"detections {stream['detections']} (host {stream['host_detections']}) "
            f"{'identical' if stream['detections_identical'] else 'DIFFERENT'}; host clock behind by "
            f"{stream['host_clock_behind_ms']} ms; "
            + ("ALL IDENTICAL" if stream["all_identical"] else "NOT identical"))


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
