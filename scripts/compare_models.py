"""Architecture and recipe comparison on one config and one data set: train, export, evaluate, estimate cost.

Every candidate is the base config with a few keys overridden, trained with the same recipe on the same cached
features (the cache key ignores the model section), evaluated int8 and float on the speaker-disjoint validation
and test speakers of --eval-data, and costed with the Cortex-M4 estimate. Writes compare.json and compare.md.

    python scripts/compare_models.py --config configs/speech_commands_12.toml --test-percent 15 \
        --data ../shared/data/speech_commands_v0.02_test_dev --train-only data/synth_sc12 \
        --eval-data ../shared/data/speech_commands_v0.02_test_dev \
        --noise ../shared/data/speech_commands_background_noise --out runs/compare
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from kws import cache_dir
from kws import config as config_module
from kws.config import with_overrides
from kws.cost.estimate import energy, estimate_model
from kws.data.features import features
from kws.evaluation.evaluate import ModelDir, evaluate
from kws.training.export import export
from kws.training.models import CANDIDATES
from kws.training.train import train

# Recipe ablations of one architecture (applied on top of --ablate-base).
ABLATIONS = {
    "no_noise": {"augment": {"noise_probability": 0.0}},
    "no_specaugment": {"augment": {"time_masks": 0, "frequency_masks": 0}},
    "qat": {"training": {"qat": True}},
    "speed": {"augment": {"speed": [0.85, 1.15]}},
    "reverb": {"augment": {"reverb_probability": 0.5}},
    "weight_average": {"training": {"restore_best": False, "weight_average": 0.999}},
    "vtlp": {"augment": {"frequency_warp": 0.1}},
    "more_copies": {"augment": {"copies": 6}},
    "more_unknown": {"keywords": {"unknown_share": 2.0}},
    "longer": {"training": {"epochs": 80, "patience": 16}},
}


def run_candidate(name: str, config: config_module.Config, data_dirs: list[str], noise: list[str],
                  eval_dirs: list[str], out: Path, drop_sources: bool, train_only: list[str] = ()) -> dict:
    run_dir = out / name
    started = time.monotonic()
    data = features(config, data_dirs, noise, cache_dir("features"), train_only)
    model_path = train(config, data, run_dir / "run", verbose=False)
    seconds = time.monotonic() - started
    exported = export(config, model_path, data, run_dir / "model")
    held_out = features(config, eval_dirs, (), cache_dir("features"))
    raw = np.concatenate([held_out.raw["validation"], held_out.raw["test"]])
    targets = np.concatenate([held_out.targets["validation"], held_out.targets["test"]])
    result = evaluate(ModelDir(run_dir / "model"), raw, targets, backend="litert")
    cost = estimate_model(ModelDir(run_dir / "model").tflite, config.board.clock_hz, config.board.cycles_per_instruction)
    power = energy(config.board, cost.inference_us, config.frontend.stride_ms, config.recognizer.inference_every_strides)
    row = {
        "name": name, "architecture": config.model.architecture, "model": config.to_dict()["model"],
        "eval_clips": result["int8"]["clips"], "int8_accuracy": result["int8"]["accuracy"],
        "int8_ci95": result["int8"]["ci95"], "float_accuracy": result["float"]["accuracy"],
        "flash_bytes": exported.tflite_bytes, "arena_bytes": exported.arena_size, "macs": cost.macs,
        "est_ms": round(cost.inference_us / 1000, 1), "energy_uj": round(power.inference_uj, 1),
        "train_seconds": round(seconds, 1),
    }
    (run_dir / "result.json").write_text(json.dumps({**row, "eval": result}, indent=2))
    if drop_sources:
        (run_dir / "model" / "model_data.cc").unlink()
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict], eval_dirs: list[str]) -> str:
    lines = [f"Evaluated on the speaker-disjoint validation and test speakers of {', '.join(eval_dirs)} "
             f"({rows[0]['eval_clips']} clips); int8 in LiteRT with default delegates off (identical to TFLM).", "",
             "| candidate | int8 acc (95% CI) | float acc | flash B | arena B | MACs | est. ms @64 MHz | µJ/inference | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['int8_accuracy']:.3f} ({r['int8_ci95'][0]:.3f}–{r['int8_ci95'][1]:.3f}) | "
                     f"{r['float_accuracy']:.3f} | {r['flash_bytes']:,} | {r['arena_bytes']:,} | {r['macs']:,} | "
                     f"{r['est_ms']} | {r['energy_uj']} | {r['train_seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--train-only", nargs="*", default=[], help="data folders used only for training")
    parser.add_argument("--eval-data", nargs="+", required=True)
    parser.add_argument("--noise", nargs="*", default=[])
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES),
                        help=f"architectures ({', '.join(CANDIDATES)}) and ablations ({', '.join(ABLATIONS)})")
    parser.add_argument("--ablate-base", default="ds_cnn_small")
    parser.add_argument("--test-percent", type=int, default=None,
                        help="hold out this share of speakers as test too (the shipped config trains on them), so "
                             "candidates are compared on validation + test speakers")
    args = parser.parse_args()
    base = config_module.load(args.config)
    if args.test_percent is not None:
        base = with_overrides(base, {"split": {"test_percent": args.test_percent}})
    out = Path(args.out)
    rows = []
    for name in args.candidates:
        if name in CANDIDATES:
            config = with_overrides(base, CANDIDATES[name])
        else:
            config = with_overrides(with_overrides(base, CANDIDATES[args.ablate_base]), ABLATIONS[name])
            name = f"{args.ablate_base}+{name}"
        rows.append(run_candidate(name, config, args.data, args.noise, args.eval_data, out, drop_sources=True,
                                  train_only=args.train_only))
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(rows, indent=2))
    (out / "compare.md").write_text(markdown(rows, args.eval_data))
    print(markdown(rows, args.eval_data))


if __name__ == "__main__":
    main()
