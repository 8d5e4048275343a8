"""The M4 check's image: built from the firmware's own front end and model runner, kws_core and one exported model
with the pinned TFLM Arduino library (`firmware/test/m4_model`), and run under QEMU on clips or a stream, whose
binary results come back as `M4Run` and `StreamRun` (`kws.cost.m4` compares them with the host and measures).

Entry points: `Library.at`, `build_image`, `run_image`, `run_stream`; `M4Error` for everything that can stop it.
"""

from __future__ import annotations

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
CLIPS_MAGIC = b"KWSM4C1\0"
RESULTS_MAGIC = b"KWSM4R1\0"
# struct ClipCounts in model_check.cpp, in order.
COUNT_FIELDS = ("frontend_instructions", "frontend_strides", "frontend_slices", "frontend_max_stride",
                "inference_instructions", "frontend_slice_instructions")
STREAM_MAGIC = b"KWSM4S1\0"
STREAM_RESULTS_MAGIC = b"KWSM4T1\0"
# struct Detection in pipeline_stubs.h: t_ms, label, score.
DETECTION_FORMAT = "<IiI"
# -icount shift=0: one instruction per virtual nanosecond, so SysTick (25 MHz) counts every 40 instructions.
QEMU_COMMAND = ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0"]
# Instructions QEMU runs per wall-clock second here is in the hundreds of millions; a clip is about 8 million.
QEMU_SECONDS_PER_CLIP = 1.0
QEMU_SECONDS_MIN = 60.0
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


def compiler_version() -> str:
    return subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def emulator_version() -> str:
    return subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
