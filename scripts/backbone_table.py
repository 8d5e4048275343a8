"""The backbone-vs-student table: trained runs exported, scored int8 on held-out data, costed at their schedule.

The rows go to docs/backbone_candidates.json, which the README's candidates table is checked against.

Each run folder (from `kws train`) is exported with its own config and training data, scored int8 (LiteRT, identical
to TFLM) on every clip of --eval-data (speakers no run trained on), and costed: Cortex-M4 instructions per inference
(the kws.cost.estimate of the layers, plus the front end's own per-inference work), the most frequent schedule whose
CPU load stays within --cpu-budget at the config's cycles per instruction, that load, and the period between
inferences (what the schedule adds to the detection delay). Front-end costs are kws m4's measurements of the shipped
model with the same front end.

    python scripts/backbone_table.py runs/bb64_s1 runs/p48_s0 runs/student_s0 \
        --data ../shared/data/speech_commands_v0.02_test_dev \
        --train-only data/sc_v01_extra/yes_no_up_down data/sc_v01_extra/nine_words \
        --noise ../shared/data/speech_commands_background_noise/{doing_the_dishes,exercise_bike,pink_noise,running_tap,white_noise}.wav \
        --eval-data ../shared/data/speech_commands_v0.02_test_dev2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kws import cache_dir
from kws import config as config_module
from kws.common.paths import REPO_ROOT
from kws.cost.estimate import estimate_model
from kws.cost.m4_record import load_measurement
from kws.data.dataset import select_clips
from kws.data.features import features
from kws.evaluation.evaluate import ModelDir, evaluate
from kws.frontends.dispatch import raw_batch
from kws.training.export import export


def frontend_costs(kind: str) -> tuple[int, int]:
    """A front end's instructions per 20 ms stride and per inference beside the model's layers (the window copy, or
    the MFCC window's peak normalization, log, DCT and int8), as `kws m4` measured them for a shipped model of it."""
    for folder in sorted((REPO_ROOT / "models").iterdir()):
        measurement = load_measurement(folder)
        if measurement is None or ModelDir(folder).config.frontend.kind != kind:
            continue
        counts = measurement["instructions"]
        layers = sum(layer["instructions"] for layer in counts["layers"])
        return counts["per_frontend_stride"]["mean"], counts["per_inference"]["median"] - layers
    raise SystemExit(f"no shipped model with the {kind} front end has an m4_measurement.json to cost it by")


def schedule(instructions: int, per_stride: int, cycles_per_instruction: float, clock_hz: int, stride_ms: int,
             budget: float) -> tuple[int, float]:
    """The smallest number of strides between inferences whose CPU load is within `budget`, and that load."""
    for every in range(1, 200):
        load = (instructions + per_stride * every) * cycles_per_instruction / (clock_hz * stride_ms / 1000 * every)
        if load <= budget:
            return every, load
    raise ValueError(f"{instructions} instructions per inference fit no schedule")


def row(run: Path, args: argparse.Namespace) -> dict:
    config = config_module.load(run / "config.toml")
    out = Path(args.out) / run.name
    if not (out / "model.tflite").exists():
        data = features(config, args.data, args.noise, cache_dir("features"), args.train_only)
        export(config, run / "model.keras", data, out)
    model_dir = ModelDir(out)
    clips = select_clips(model_dir.config, args.eval_data, "all")
    result = evaluate(model_dir, raw_batch(model_dir.config, clips.audio, len(clips.audio), run.name), clips.targets,
                      "litert")
    per_stride, per_inference = frontend_costs(config.frontend.kind)
    instructions = estimate_model(model_dir.tflite).instructions + per_inference
    board = config.board
    every, load = schedule(instructions, per_stride, board.cycles_per_instruction, board.clock_hz,
                           config.frontend.stride_ms, args.cpu_budget)
    return {"run": run.name, "front_end": config.frontend.kind, "filters": config.model.filters,
            "backbone": bool(config.model.backbone), "seed": config.training.seed, "clips": len(clips.targets),
            "int8": result["int8"]["accuracy"], "ci95": result["int8"]["ci95"], "float": result["float"]["accuracy"],
            "per_class": {label: c["accuracy"] for label, c in result["int8"]["per_class"].items()},
            "instructions": instructions, "every_strides": every, "cpu_load": round(load, 3),
            "period_ms": every * config.frontend.stride_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of kws train")
    parser.add_argument("--data", nargs="+", required=True, help="the runs' --data (for export's calibration)")
    parser.add_argument("--train-only", nargs="*", default=[])
    parser.add_argument("--noise", nargs="*", default=[])
    parser.add_argument("--eval-data", nargs="+", required=True, help="held-out folders: every clip is scored")
    parser.add_argument("--cpu-budget", type=float, default=0.75, help="largest CPU load a schedule may have")
    parser.add_argument("--out", default="runs/backbone_table", help="the exported models go here")
    parser.add_argument("--table", default="docs/backbone_candidates.json",
                        help="the rows as JSON (the README's candidates table is checked against this file)")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        rows.append(row(run, args))
        print(json.dumps(rows[-1]), flush=True)
    Path(args.table).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{args.table}: {len(rows)} rows; `python tests/test_readme.py` prints them as README rows")


if __name__ == "__main__":
    main()
