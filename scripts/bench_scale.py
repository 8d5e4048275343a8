"""Peak memory and wall time of the scoring commands as the data grows (figures, not tests).

Generates N one-second clips of the model's words (tone bursts with a per-speaker pitch: the model's accuracy on
them is meaningless, the work done per clip is the same as on speech) and NOISE noise files, then runs each command
in its own process on a copy of the model and prints its peak resident memory (ru_maxrss) and wall time.

    .venv/bin/python scripts/bench_scale.py --clips 1000 5000 [--noise-files 15] [--stream-minutes 10]
        [--commands eval report calibrate] [--model models/speech_commands_12]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def make_clips(root: Path, words: list[str], count: int, rng: np.random.Generator) -> None:
    """`count` clips spread over the words, 200 speakers, each a windowed tone burst of 300-700 ms."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    from kws.data import audio

    for i in range(count):
        word, speaker = words[i % len(words)], i % 200
        length = rng.uniform(0.3, 0.7)
        start = rng.uniform(0.05, 0.95 - length)
        envelope = np.clip(np.minimum(t - start, start + length - t) * 20, 0, 1)
        pitch = 100 + 3 * speaker + 40 * (i % len(words))
        burst = envelope * sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
        samples = audio.float_to_int16(0.2 * burst + 0.002 * rng.standard_normal(SAMPLE_RATE))
        path = root / word / f"spk{speaker:03d}_nohash_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        audio.write_wav(path, samples, SAMPLE_RATE)


def make_noise(root: Path, count: int, rng: np.random.Generator, seconds: int = 60) -> list[Path]:
    from kws.data import audio, augment

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        noise = augment.generated_noise(SAMPLE_RATE, rng, seconds)[i % 3]
        paths.append(root / f"noise_{i:02d}.wav")
        audio.write_wav(paths[-1], audio.float_to_int16(noise), SAMPLE_RATE)
    return paths


def measure(command: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit status) of one command run as a child process."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        print(process.stderr.read().decode()[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, seconds, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--noise-files", type=int, default=15)
    parser.add_argument("--stream-minutes", type=float, default=10.0)
    parser.add_argument("--commands", nargs="+", default=["eval", "report", "calibrate"])
    parser.add_argument("--model", default="models/speech_commands_12")
    args = parser.parse_args()

    from kws import config as config_module

    config = config_module.load(Path(args.model) / "config.toml")
    words = list(config.keywords.words) + list(config.keywords.unknown_words or ["cat", "tree", "house", "bird"])
    rng = np.random.default_rng(0)
    kws = [sys.executable, "-m", "kws.cli"]
    print(f"{'clips':>6} {'command':<10} {'peak RSS MB':>12} {'wall s':>8}  (noise files {args.noise_files}, "
          f"streams {args.stream_minutes:g} min, 2-core machine shared with other work)")
    with tempfile.TemporaryDirectory(prefix="kws-scale-") as tmp:
        noise = [str(p) for p in make_noise(Path(tmp) / "noise", args.noise_files, rng)]
        for count in args.clips:
            clips = Path(tmp) / f"clips_{count}"
            make_clips(clips, words, count, rng)
            model = Path(tmp) / f"model_{count}"
            shutil.copytree(args.model, model, ignore=shutil.ignore_patterns("report"))
            scoring = ["--model", str(model), "--data", str(clips), "--split", "all"]
            streams = ["--noise", *noise, "--stream-minutes", str(args.stream_minutes)]
            commands = {"eval": [*kws, "eval", *scoring],
                        "report": [*kws, "report", *scoring, *streams, "--out", str(Path(tmp) / f"report_{count}")],
                        "calibrate": [*kws, "calibrate", *scoring, *streams]}
            for name in args.commands:
                peak, seconds, status = measure(commands[name])
                failed = "" if status == 0 else f"  FAILED (exit {status})"
                print(f"{count:>6} {name:<10} {peak:>12.0f} {seconds:>8.1f}{failed}", flush=True)


if __name__ == "__main__":
    main()
