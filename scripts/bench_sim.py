"""Throughput of the host tools (figures, not tests): the virtual board's pipeline in x real time per backend on
one core, and the monitor's line parsing in lines/s.

    .venv/bin/python scripts/bench_sim.py --model models/yes_no [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def pipeline_speed(model: str, backend: str, audio: np.ndarray, sample_rate: int) -> float:
    """x real time of StreamingPipeline.feed over the whole recording, fed in 1024-byte AUDIO-frame chunks."""
    from kws.board.pipeline import StreamingPipeline
    from kws.evaluation.evaluate import ModelDir

    pipeline = StreamingPipeline(ModelDir(model), backend)
    start = time.perf_counter()
    for offset in range(0, len(audio), 512):
        pipeline.feed(audio[offset:offset + 512])
    return len(audio) / sample_rate / (time.perf_counter() - start)


def parsing_speed(lines: int) -> float:
    """DET lines/s through protocol.LineDecoder and the monitor's per-line handling (log off, output discarded)."""
    import io

    from kws.board import core
    from kws.board.protocol import LineDecoder
    from kws.device.monitor import Monitor

    line = core.format_line("DET", {"t_ms": 51240, "label": "yes", "idx": 2, "score": 231, "fe_us": 712,
                                    "inf_us": 21480, "step_us": 22310, "est_m4_us": 14814})
    data = line * lines
    decoder, monitor = LineDecoder(), Monitor(io.StringIO())
    start = time.perf_counter()
    for offset in range(0, len(data), 4096):  # as a serial read hands it over
        for event in decoder.feed(data[offset:offset + 4096]):
            monitor.handle(event, 0.0)
    assert monitor.detections == lines
    return lines / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder from kws export")
    parser.add_argument("--seconds", type=int, default=60, help="length of the generated recording")
    parser.add_argument("--lines", type=int, default=50_000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the figure claims
    from kws.evaluation.evaluate import ModelDir

    sample_rate = ModelDir(args.model).config.audio.sample_rate
    # Speech-like load: noise bursts over quiet background, so the front end's noise reduction and PCAN do work.
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 300, args.seconds * sample_rate)
    envelope = (np.sin(np.arange(len(audio)) / sample_rate * 2 * np.pi * 0.7) > 0.6) * 10 + 1
    audio = np.clip(audio * envelope, -32768, 32767).astype(np.int16)
    for backend in ("tflm", "litert"):
        print(f"pipeline {backend}: {pipeline_speed(args.model, backend, audio, sample_rate):.1f}x real time "
              f"({args.seconds} s of audio, one core)")
    print(f"monitor parsing: {parsing_speed(args.lines):,.0f} DET lines/s")


if __name__ == "__main__":
    main()
