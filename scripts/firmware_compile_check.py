"""Compiles the firmware for the Nano 33 BLE Sense without PlatformIO, and measures what Bluetooth LE adds.

PlatformIO's registry is not always reachable (CI, this project's build machines), so `pio run` cannot be. This
script compiles what `pio run -e nano33ble` and `pio run -e nano33ble_ble` compile, with Debian's
arm-none-eabi-gcc and the flags PlatformIO uses, against extracted source trees of the pinned packages:

  --core  arduino/ArduinoCore-mbed 4.5.0 (what platformio/nordicnrf52@10.11.0 installs as framework-arduino-mbed;
          its libmbed.a may be absent, it is not needed to compile)
  --api   arduino/ArduinoCore-API 1.5.2 (the framework's cores/arduino/api)
  --tflm  spaziochirale/Chirale_TensorFlowLite 2.0.0 (e.g. .pio/libdeps/nano33ble/Chirale_TensorFLowLite)
  --ble   arduino-libraries/ArduinoBLE 1.5.0

Keep them in an ignored folder (.pio/...); they are never part of this repository.

Flags, as PlatformIO's mbed builder (builder-framework-arduino-core-mbed) and the nano33ble board give them: the
variant's cflags.txt or cxxflags.txt, defines.txt and includes.txt (with -iprefix <core>/cores/arduino),
-DARDUINO=10810 -DARDUINO_ARCH_MBED, the board's -DARDUINO_ARDUINO_NANO33BLE -DARDUINO_ARCH_NRF52840, -nostdlib,
then -Wall -Wextra, then -mfloat-abi=soft -mfpu=fpv4-sp-d16, which the builder appends after the core's softfp.

Two environments, as platformio.ini: `default` (firmware/src without ble_link.cpp) and `ble` (-DKWS_BLE=1, all of
firmware/src, and every ArduinoBLE source). Our files (firmware/src, firmware/lib/kws_core, the model's
model_data.cc) get -Werror: a warning there fails the check, naming the file. A library file that does not compile
fails it too; a library's warnings are printed and counted.

Then, unless --no-size, both builds are linked with --gc-sections from the firmware's entry points (setup and loop;
static constructors are kept, as in the real image, where PlatformIO links every library with --whole-archive) and
the BLE build's flash and RAM are compared with the default build's, per output section and per origin. Counted:
our code, the Arduino core and ArduinoCore-API, the PDM and Wire libraries, TFLM, ArduinoBLE, and what newlib-nano, libstdc++
and libgcc they pull in. Not counted: mbed OS, including Cordio's link layer and its buffers (libmbed.a; its symbols
are left unresolved, --unresolved-symbols=ignore-all), and the heap (ArduinoBLE allocates its attributes and
values, the Cordio driver its memory, at run time). A newlib function that mbed OS already links in the real image
is counted here as added if only the BLE build calls it: the per-origin table shows those under `toolchain libs`.

--baseline REF also compiles the default environment's firmware/src and kws_core as they are at git REF and
reports which objects differ (`arm-none-eabi-objdump -drs`: code, relocations and every section's bytes; and
section sizes), to show that a change leaves the
default build as it was.

    python scripts/firmware_compile_check.py --core .pio/snapshots/ArduinoCore-mbed-4.5.0 \\
        --api .pio/snapshots/ArduinoCore-API-1.5.2 --tflm .pio/libdeps/nano33ble/Chirale_TensorFLowLite \\
        --ble .pio/snapshots/ArduinoBLE-1.5.0 [--model speech_commands_12 ...] [--baseline main]

Objects go to build/firmware_compile_check/ (gitignored) and are reused while their command and inputs are
unchanged; TFLM's 215 sources take about 4 minutes on two cores the first time. Exit status 0: everything compiled
(and, with --baseline, nothing else is claimed: the differences are printed).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
DEFAULT_BUILD = REPO / "build" / "firmware_compile_check"
VARIANT = Path("variants") / "ARDUINO_NANO33BLE"

CC = "arm-none-eabi-gcc"
CXX = "arm-none-eabi-g++"
# builder-framework-arduino-core-mbed: CPPDEFINES; boards/nano33ble.json: build.extra_flags.
PIO_DEFINES = ["-DARDUINO=10810", "-DARDUINO_ARCH_MBED"]
BOARD_FLAGS = ["-DARDUINO_ARDUINO_NANO33BLE", "-DARDUINO_ARCH_NRF52840"]
WARNINGS = ["-Wall", "-Wextra"]
# configure_fpu_flags in the builder: appended after the core's -mfloat-abi=softfp, so it wins.
FLOAT_ABI = ["-mfloat-abi=soft", "-mfpu=fpv4-sp-d16"]
ARCH = ["-mcpu=cortex-m4", "-mthumb", *FLOAT_ABI]
# The link that measures: rooted at the sketch's entry points, mbed OS left unresolved.
ROOTS = ["setup", "loop"]
TOOLCHAIN_LIBS = ["-lstdc++", "-lsupc++", "-lm", "-lc", "-lgcc", "-lnosys"]
SOURCE_SUFFIXES = {".c", ".cc", ".cpp"}


class CheckError(Exception):
    """A file did not compile, a warning in our code, or an input that is not what it should be."""


@dataclass(frozen=True)
class Source:
    path: Path
    group: str  # firmware, kws_core, model, core, PDM, Wire, TFLM, ArduinoBLE
    ours: bool


@dataclass
class Result:
    source: Source
    obj: Path
    compiled: bool  # False: up to date, reused
    warnings: list[str] = field(default_factory=list)


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def sources_under(root: Path, group: str, ours: bool = False, skip: Iterable[str] = ()) -> list[Source]:
    skipped = set(skip)
    found = sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.name not in skipped)
    return [Source(p, group, ours) for p in found]


class Inputs:
    """The source trees, checked to be what the options say they are."""

    def __init__(self, core: Path, api: Path, tflm: Path, ble: Path) -> None:
        self.core, self.api, self.tflm, self.ble = core.resolve(), api.resolve(), tflm.resolve(), ble.resolve()
        self.variant = self.core / VARIANT
        expected = {
            "--core": self.variant / "includes.txt",
            "--api": self.api / "api" / "ArduinoAPI.h",
            "--tflm": self.tflm / "src" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h",
            "--ble": self.ble / "src" / "utility" / "HCI.cpp",
        }
        for option, path in expected.items():
            if not path.is_file():
                raise CheckError(f"{option}: {shown(path)} is missing; see --help for what the option expects")
        version = re.search(r"^version=(\S+)", (self.ble / "library.properties").read_text(), re.M)
        if not version or version.group(1) != "1.5.0":
            raise CheckError(f"--ble: ArduinoBLE {version.group(1) if version else '?'}, not the pinned 1.5.0")
        # The core's libraries the firmware uses: PDM (audio_provider) and Wire (TFLM's peripherals.h).
        self.pdm = self.core / "libraries" / "PDM" / "src"
        self.wire = self.core / "libraries" / "Wire"

    def core_sources(self) -> list[Source]:
        """FrameworkArduino (cores/arduino with ArduinoCore-API's api/) and FrameworkArduinoVariant."""
        return (sources_under(self.core / "cores" / "arduino", "core")
                + sources_under(self.api / "api", "core")
                + sources_under(self.variant, "core"))

    def base_flags(self, cxx: bool) -> list[str]:
        v = self.variant
        arduino = self.core / "cores" / "arduino"
        return [
            f"@{v / ('cxxflags.txt' if cxx else 'cflags.txt')}", f"@{v / 'defines.txt'}",
            *PIO_DEFINES, *BOARD_FLAGS,
            f"-I{arduino}", f"-I{self.api}", f"-I{self.api / 'api' / 'deprecated'}",
            f"-I{self.api / 'api' / 'deprecated-avr-comp'}", f"-I{v}",
        ]

    def tail_flags(self) -> list[str]:
        return [f"-iprefix{self.core / 'cores' / 'arduino'}", f"@{self.variant / 'includes.txt'}", "-nostdlib"]


class Compiler:
    """Compiles sources in parallel into a build folder, reusing objects whose command and inputs are unchanged."""

    def __init__(self, inputs: Inputs, build: Path, jobs: int, verbose: bool) -> None:
        self.inputs, self.build, self.jobs, self.verbose = inputs, build, jobs, verbose

    def command(self, source: Source, obj: Path, includes: Sequence[str], defines: Sequence[str]) -> list[str]:
        cxx = source.path.suffix != ".c"
        return [
            CXX if cxx else CC, *self.inputs.base_flags(cxx), *defines, *includes, *self.inputs.tail_flags(),
            *WARNINGS, *(["-Werror"] if source.ours else []), *FLOAT_ABI,
            "-MMD", "-MF", str(obj.with_suffix(".d")), "-c", str(source.path), "-o", str(obj),
        ]

    @staticmethod
    def up_to_date(obj: Path, command: list[str]) -> bool:
        cmd_file, dep_file = obj.with_suffix(".cmd"), obj.with_suffix(".d")
        if not (obj.is_file() and cmd_file.is_file() and dep_file.is_file()):
            return False
        if json.loads(cmd_file.read_text()) != command:
            return False
        built = obj.stat().st_mtime
        deps = dep_file.read_text().replace("\\\n", " ").split(":", 1)[-1].split()
        return all(Path(d).is_file() and Path(d).stat().st_mtime <= built for d in deps)

    def compile_one(self, source: Source, obj: Path, command: list[str]) -> Result:
        if self.up_to_date(obj, command):
            return Result(source, obj, compiled=False)
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.with_suffix(".cmd").unlink(missing_ok=True)
        run = subprocess.run(command, capture_output=True, text=True)
        messages = (run.stdout + run.stderr).strip()
        if run.returncode != 0:
            what = "our file" if source.ours else f"{source.group} library file"
            raise CheckError(f"{shown(source.path)} ({what}) did not compile:\n{messages}")
        obj.with_suffix(".cmd").write_text(json.dumps(command))
        warnings = [line for line in messages.splitlines() if "warning:" in line]
        if source.ours and warnings:  # -Werror makes these errors; this is a second net
            raise CheckError(f"{shown(source.path)}: warnings in our code:\n{messages}")
        return Result(source, obj, compiled=True, warnings=warnings)

    def compile(self, label: str, sources: Sequence[Source], out: Path, includes: Sequence[str],
                defines: Sequence[str] = ()) -> list[Result]:
        jobs = []
        for source in sources:
            obj = out / source.group / (self.object_name(source) + ".o")
            jobs.append((source, obj, self.command(source, obj, includes, defines)))
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self.compile_one, *job) for job in jobs]
            results = [f.result() for f in futures]
        self.report(label, results)
        return results

    @staticmethod
    def object_name(source: Source) -> str:
        """Unique per source: the path below a well-known root, with separators flattened."""
        parts = source.path.parts
        for anchor in ("src", "cores", "api", "variants", "kws_core", "models"):
            if anchor in parts:
                i = len(parts) - 1 - parts[::-1].index(anchor)
                return "__".join(parts[i + 1:])
        return source.path.name

    def report(self, label: str, results: list[Result]) -> None:
        compiled = sum(r.compiled for r in results)
        warned = [r for r in results if r.warnings]
        by_group: dict[str, int] = defaultdict(int)
        for r in results:
            by_group[r.source.group] += 1
        groups = ", ".join(f"{g} {n}" for g, n in by_group.items())
        print(f"  {label}: {len(results)} sources ({groups}): {compiled} compiled, {len(results) - compiled} "
              f"up to date" + (f"; warnings in {len(warned)} library files" if warned else ""))
        for r in results:
            if r.source.ours or self.verbose:
                state = "compiled" if r.compiled else "up to date"
                print(f"    {shown(r.source.path)}: {state}, no warning")
        for r in warned:
            print(f"    warning(s) in {shown(r.source.path)} (library, not ours):")
            for line in r.warnings[:5]:
                print(f"      {line}")
            if len(r.warnings) > 5:
                print(f"      ... {len(r.warnings) - 5} more")


def our_sources(src: Path, core: Path, model: Path, env: str) -> list[Source]:
    skip = () if env == "ble" else ("ble_link.cpp",)  # platformio.ini: build_src_filter of env:nano33ble
    return (sources_under(src, "firmware", ours=True, skip=skip)
            + sources_under(core, "kws_core", ours=True)
            + [Source(model / "model_data.cc", "model", ours=True)])


def our_includes(inputs: Inputs, src: Path, core: Path, model: Path, env: str) -> list[str]:
    paths = [src, core, model, inputs.tflm / "src", inputs.pdm, inputs.wire]
    if env == "ble":
        paths.append(inputs.ble / "src")
    return [f"-I{p}" for p in paths]


# ---- the measuring link ----

FLASH_SECTIONS_NOT = {".bss", ".noinit", ".heap", ".stack", ".stack_dummy", ".heap_dummy"}


def section_sizes(elf: Path) -> dict[str, int]:
    """Allocated output sections and their sizes (arm-none-eabi-size -A, minus what is not loaded)."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], check=True, capture_output=True, text=True).stdout
    sizes = {}
    for line in out.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+(\d+)$", line.strip())
        if m and int(m.group(3)) != 0:  # address 0: not allocated (comments, attributes)
            sizes[m.group(1)] = int(m.group(2))
    return sizes


def flash_ram(sizes: dict[str, int]) -> tuple[int, int]:
    flash = sum(n for s, n in sizes.items() if s not in FLASH_SECTIONS_NOT)
    ram = sum(n for s, n in sizes.items() if s in (".data", ".bss", ".noinit"))
    return flash, ram


ORIGINS = {"firmware": "ours: firmware/src", "kws_core": "ours: kws_core", "model": "ours: model data",
           "core": "Arduino core + API", "PDM": "PDM library", "Wire": "Wire library", "TFLM": "TFLM", "ArduinoBLE": "ArduinoBLE"}


def origin_of(path: str, build: Path) -> str:
    """Our objects sit in <build>/.../<group>/<name>.o; archives and anything else come from the toolchain."""
    p = Path(path.split("(")[0])
    if p.is_relative_to(build) and p.parent.name in ORIGINS:
        return ORIGINS[p.parent.name]
    if p.suffix == ".a":
        return "toolchain libs (newlib-nano, libstdc++, libgcc)"
    return "other"


def map_by_origin(map_file: Path, build: Path) -> dict[str, dict[str, int]]:
    """Bytes per origin and output section, from the linker map's memory map part."""
    text = map_file.read_text(errors="replace")
    text = text[text.find("Linker script and memory map"):]
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    out_section = None
    pending = None
    for line in text.splitlines():
        m = re.match(r"^(\.\S+)(?:\s+0x[0-9a-f]+\s+0x[0-9a-f]+)?\s*$", line)
        if m:
            out_section = m.group(1)
            continue
        m = re.match(r"^ (\S+)\s*$", line)
        if m and not line.startswith(" *"):
            pending = m.group(1)
            continue
        m = re.match(r"^ (?:(\S+))?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m and out_section and (m.group(1) or pending):
            name = m.group(1) or pending
            size = int(m.group(3), 16)
            origin = "fill" if name == "*fill*" else origin_of(m.group(4), build)
            table[origin][out_section] += size
        pending = None
    return table


def link(objs: Sequence[Path], elf: Path) -> None:
    command = [
        CXX, *ARCH, "--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections",
        f"-Wl,--entry={ROOTS[0]}", *(f"-Wl,--undefined={r}" for r in ROOTS[1:]),
        "-Wl,--unresolved-symbols=ignore-all",
        "-Wl,--defsym=__dso_handle=0",  # crtbegin.o's, left out with the start files; static destructors' handle
        f"-Wl,-Map,{elf.with_suffix('.map')}", "-o", str(elf),
        *map(str, objs), "-Wl,--start-group", *TOOLCHAIN_LIBS, "-Wl,--end-group",
    ]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise CheckError(f"the measuring link of {elf.name} failed:\n{run.stdout}{run.stderr}")


def measure(objects: dict[str, list[Path]], build: Path, model: str) -> None:
    sizes, origins = {}, {}
    for env, objs in objects.items():
        elf = build / "link" / model / f"{env}.elf"
        elf.parent.mkdir(parents=True, exist_ok=True)
        link(objs, elf)
        sizes[env] = section_sizes(elf)
        origins[env] = map_by_origin(elf.with_suffix(".map"), build)
    print(f"\nWhat Bluetooth LE adds ({model}; --gc-sections link from {', '.join(ROOTS)} and the static "
          "constructors; mbed OS and the heap not counted):")
    names = sorted(set(sizes["default"]) | set(sizes["ble"]), key=lambda s: (s in FLASH_SECTIONS_NOT, s))
    print(f"  {'section':<14}{'default':>10}{'ble':>10}{'added':>10}")
    for s in names:
        a, b = sizes["default"].get(s, 0), sizes["ble"].get(s, 0)
        print(f"  {s:<14}{a:>10,}{b:>10,}{b - a:>+10,}")
    (fa, ra), (fb, rb) = flash_ram(sizes["default"]), flash_ram(sizes["ble"])
    print(f"  {'flash':<14}{fa:>10,}{fb:>10,}{fb - fa:>+10,}   (every loaded section: .text .rodata .data ...)")
    print(f"  {'RAM':<14}{ra:>10,}{rb:>10,}{rb - ra:>+10,}   (.data + .bss)")
    print("  by origin, ble minus default (input sections in the link map, before string merging):")
    for origin in sorted(set(origins["default"]) | set(origins["ble"])):
        def totals(env: str, origin: str = origin) -> tuple[int, int]:
            per = {s: n for s, n in origins[env].get(origin, {}).items() if s in sizes[env]}  # loaded only
            return flash_ram(per)
        (f0, r0), (f1, r1) = totals("default"), totals("ble")
        if (f0, r0) != (f1, r1):
            print(f"    {origin:<52} flash {f1 - f0:>+8,}  RAM {r1 - r0:>+7,}")


# ---- the default build at another revision ----

def extract_revision(ref: str, build: Path) -> Path:
    """firmware/ at ref, in a folder of its own commit: extracted files carry the commit's time, so objects
    built from another revision's files could otherwise look up to date."""
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                         capture_output=True, text=True)
    if rev.returncode != 0:
        raise CheckError(f"--baseline {ref}: not a commit: {rev.stderr.strip()}")
    dest = build / "baseline" / rev.stdout.strip()[:12]
    if not (dest / "firmware").is_dir():
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev.stdout.strip(), "firmware/src",
                                  "firmware/lib/kws_core"], capture_output=True)
        if archive.returncode != 0:
            raise CheckError(f"--baseline {ref}: git archive failed: {archive.stderr.decode().strip()}")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(dest, filter="data")
    return dest


def disassembly(obj: Path) -> str:
    """Code with its relocations, and every section's bytes (constants, strings, initial data)."""
    out = subprocess.run(["arm-none-eabi-objdump", "-drs", str(obj)], check=True, capture_output=True,
                         text=True)
    return out.stdout.split("\n", 2)[-1]  # drop the line naming the file


def compare_objects(now: list[Result], then: list[Result]) -> None:
    old = {r.source.path.name: r for r in then}
    same, differ = [], []
    for r in now:
        before = old.pop(r.source.path.name, None)
        if before is None:
            differ.append(f"{r.source.path.name}: new")
            continue
        if disassembly(r.obj) == disassembly(before.obj) and section_sizes_obj(r.obj) == section_sizes_obj(
                before.obj):
            same.append(r.source.path.name)
        else:
            a, b = section_sizes_obj(before.obj), section_sizes_obj(r.obj)
            changed = {s: (a.get(s, 0), b.get(s, 0)) for s in set(a) | set(b) if a.get(s, 0) != b.get(s, 0)}
            differ.append(f"{r.source.path.name}: code differs" + (f", sizes {changed}" if changed else
                                                                     ", same section sizes"))
    differ += [f"{name}: gone" for name in old]
    print(f"  identical to the baseline (objdump -drs: code, relocations, section bytes): {len(same)} objects")
    for line in differ:
        print(f"  differs: {line}")


def section_sizes_obj(obj: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], check=True, capture_output=True, text=True).stdout
    sizes: dict[str, int] = defaultdict(int)
    for line in out.splitlines():
        m = re.match(r"^(\.[a-z_]+)\S*\s+(\d+)\s+\d+$", line.strip())
        if m and m.group(1) in (".text", ".rodata", ".data", ".bss", ".init_array"):
            sizes[m.group(1)] += int(m.group(2))
    return dict(sizes)


# ---- main ----

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--core", type=Path, required=True, help="ArduinoCore-mbed 4.5.0 source tree")
    parser.add_argument("--api", type=Path, required=True, help="ArduinoCore-API 1.5.2 source tree")
    parser.add_argument("--tflm", type=Path, required=True, help="Chirale_TensorFlowLite 2.0.0 library folder")
    parser.add_argument("--ble", type=Path, required=True, help="ArduinoBLE 1.5.0 library folder")
    parser.add_argument("--model", action="append", help="models/<name> to compile in (default speech_commands_12; "
                        "repeat for more)")
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD)
    parser.add_argument("--no-size", action="store_true", help="compile only: skip the libraries and the link")
    parser.add_argument("--baseline", metavar="REF", help="compare the default build's objects with git REF's")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("-v", "--verbose", action="store_true", help="name every library file compiled too")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    inputs = Inputs(args.core, args.api, args.tflm, args.ble)
    build = args.build_dir.resolve()
    compiler = Compiler(inputs, build, args.jobs, args.verbose)
    src, core = FIRMWARE / "src", FIRMWARE / "lib" / "kws_core"
    print(f"Compiling for the Nano 33 BLE ({CXX}, {inputs.variant}'s flags, then {' '.join(FLOAT_ABI)})")

    libraries: list[Result] = []
    ble_defines = ["-DKWS_BLE=1"]  # platformio.ini: build_flags of env:nano33ble_ble, for every file it builds
    ble_library = compiler.compile("ArduinoBLE 1.5.0 (env ble)", sources_under(inputs.ble / "src", "ArduinoBLE"),
                                   build / "ble", [f"-I{inputs.ble / 'src'}"], ble_defines)
    if not args.no_size:
        # The same objects serve both environments: no source of these libraries tests KWS_BLE.
        for lib_root in (inputs.core / "cores", inputs.api / "api", inputs.pdm, inputs.wire, inputs.tflm / "src"):
            for path in lib_root.rglob("*"):
                if path.suffix in SOURCE_SUFFIXES | {".h"} and b"KWS_BLE" in path.read_bytes():
                    raise CheckError(f"{shown(path)} tests KWS_BLE: compile the libraries per environment")
        libraries = (compiler.compile("Arduino core, ArduinoCore-API, variant", inputs.core_sources(),
                                      build / "lib", [])
                     + compiler.compile("PDM and Wire libraries", sources_under(inputs.pdm, "PDM")
                                        + sources_under(inputs.wire, "Wire"), build / "lib",
                                        [f"-I{inputs.pdm}", f"-I{inputs.wire}"])
                     + compiler.compile("TFLM (Chirale_TensorFlowLite 2.0.0)",
                                        sources_under(inputs.tflm / "src", "TFLM"), build / "lib",
                                        [f"-I{inputs.tflm / 'src'}", f"-I{inputs.wire}"]))

    for model_name in args.model or ["speech_commands_12"]:
        model = REPO / "models" / model_name
        if not (model / "model_data.cc").is_file():
            raise CheckError(f"--model {model_name}: {shown(model)} has no model_data.cc")
        objects: dict[str, list[Path]] = {}
        ours: dict[str, list[Result]] = {}
        for env in ("default", "ble"):
            defines = ble_defines if env == "ble" else []
            ours[env] = compiler.compile(f"ours, env {env}, model {model_name}", our_sources(src, core, model, env),
                                         build / env / model_name, our_includes(inputs, src, core, model, env),
                                         defines)
            objects[env] = [r.obj for r in ours[env] + libraries + (ble_library if env == "ble" else [])]
        if args.baseline:
            base = extract_revision(args.baseline, build)
            tree = base / "firmware"
            then = compiler.compile(f"ours at {args.baseline}, env default, model {model_name}",
                                    our_sources(tree / "src", tree / "lib" / "kws_core", model, "default"),
                                    base / "objects" / model_name,
                                    our_includes(inputs, tree / "src", tree / "lib" / "kws_core", model, "default"))
            print(f"Default build against {args.baseline}:")
            compare_objects(ours["default"], then)
        if not args.no_size:
            measure(objects, build, model_name)
    print("\nOK: every file compiled; no warning in our files.")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(parse_args(argv))
    except CheckError as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
