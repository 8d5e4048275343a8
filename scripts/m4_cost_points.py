"""Measure every candidate architecture on the Cortex-M4 with the pinned TFLM library: the points the cost model is
fitted to (docs/cost_model.md).

Each candidate of kws.training.models.CANDIDATES is built on the base config untrained, quantized with random
representative features (instruction counts depend on the layers' shapes, not on their weights) and run through
`kws m4` on a few generated noise clips. Writes points.json (one row per layer: op, kind, MACs, input and output
elements, measured and estimated instructions), fits each layer kind's rate (kws.cost.estimate.RATE_TERMS, non-negative
least squares on relative error) and prints each kind's error, in sample and with each candidate left out of the
fit. With --write-rates the fit replaces host/kws/cost/m4_cost_rates.json, which kws.cost.estimate reads; the front end's
instructions per stride come from the default model's own m4_measurement.json (real speech).

    python scripts/m4_cost_points.py --config configs/speech_commands_12.toml --out runs/cost_points --write-rates
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from kws import config as config_module
from kws.board.firmware import board_build_flags
from kws.common.paths import DEFAULT_MODEL, TFLM_LIBRARY
from kws.config import with_overrides
from kws.cost import m4, m4_record
from kws.cost.estimate import RATE_TERMS, RATES_FILE, OpCost, Rate, estimate_model
from kws.frontends.microfrontend import to_float
from kws.training.export import export
from kws.training.models import CANDIDATES, build

CLIPS = 3
TERM_COLUMNS = {"per_mac": "macs", "per_patch": "patch_elements", "per_output_block": "output_blocks",
                "per_input": "input_elements", "per_output": "output_elements"}
# Shapes measured beside the candidates, so that each layer kind has points of several sizes to fit and check.
SHAPE_PROBES = {
    "probe_ds_cnn_16ch": {"model": {"architecture": "ds_cnn", "filters": 16, "blocks": 2, "kernel": [8, 4],
                                    "stride": [2, 2], "head": "average"}},
    "probe_ds_cnn_48ch": {"model": {"architecture": "ds_cnn", "filters": 48, "blocks": 2, "kernel": [10, 4],
                                    "stride": [4, 4], "head": "flatten"}},
    "probe_cnn_16ch": {"model": {"architecture": "cnn", "filters": 16, "blocks": 3, "kernel": [6, 6],
                                 "stride": [2, 2], "head": "average"}},
}


class RandomFeatures:
    """Stands in for kws.data.features.Features in export(): quantization needs representative inputs, the cost does not
    depend on what they are."""

    def __init__(self, config: config_module.Config, rng: np.random.Generator) -> None:
        raw = rng.integers(0, 700, size=(64, config.num_slices, config.frontend.channels), dtype=np.uint16)
        self._train = to_float(raw)[..., np.newaxis]
        self.summary = {"sources": [], "note": "untrained model, random representative features"}

    def float(self, split: str) -> np.ndarray:
        return self._train


def measure_candidate(name: str, config: config_module.Config, out: Path, library: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    # The budget is not the question here: every candidate is measured.
    config = dataclasses.replace(config, name=name, targets=dataclasses.replace(
        config.targets, flash_bytes=1 << 20, arena_bytes=1 << 20))
    model_path = out / name / "model.keras"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    build(config).save(model_path)
    model_dir = out / name / "model"
    export(config, model_path, RandomFeatures(config, rng), model_dir)
    clips = (rng.normal(0, 2000, size=(CLIPS, config.clip_samples))).astype(np.int16)
    opt, float_abi = board_build_flags()
    measurement = m4.measure(model_dir, library, clips, "generated noise", opt, [float_abi])
    (model_dir / m4_record.MEASUREMENT_FILE).write_text(json.dumps(measurement, indent=2) + "\n")
    estimate = estimate_model((model_dir / "model.tflite").read_bytes())
    rows = []
    for layer, op in zip(measurement["instructions"]["layers"], estimate.ops, strict=True):
        rows.append({**{field: getattr(op, field) for field in ("op", "kind", *TERM_COLUMNS.values())},
                     "candidate": name, "instructions": layer["instructions"], "estimated": op.instructions})
    return rows


def fit(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Each measured kind's rate over its terms, minimising relative error, coefficients >= 0."""
    from scipy.optimize import nnls

    rates = {}
    for kind, terms in RATE_TERMS.items():
        points = [row for row in rows if row["kind"] == kind]
        if not points:
            continue
        design = np.array([[row[TERM_COLUMNS[term]] if term != "fixed" else 1.0 for term in terms]
                           for row in points], float)
        measured = np.array([row["instructions"] for row in points], float)
        coefficients, _ = nnls(design / measured[:, None], np.ones(len(points)))
        rates[kind] = {term: round(float(value), 4) for term, value in zip(terms, coefficients, strict=True)}
    return rates


def errors(rows: list[dict], rates: dict[str, dict[str, float]]) -> dict[str, float]:
    """Largest |estimate / measured - 1| per kind."""
    worst: dict[str, float] = {}
    for row in rows:
        layer = OpCost(**{field: row[field] for field in ("op", "kind", *TERM_COLUMNS.values())}, instructions=0,
                       calibrated=True)
        error = abs(Rate(**rates[row["kind"]]).instructions(layer) / row["instructions"] - 1)
        worst[row["kind"]] = max(worst.get(row["kind"], 0.0), error)
    return worst


def leave_one_out_errors(rows: list[dict]) -> dict[str, float]:
    """Largest error per kind on each candidate's layers when the fit has not seen that candidate."""
    worst: dict[str, float] = {}
    for candidate in sorted({row["candidate"] for row in rows}):
        held_out = [row for row in rows if row["candidate"] == candidate]
        rates = fit([row for row in rows if row["candidate"] != candidate])
        seen = [row for row in held_out if row["kind"] in rates]
        for kind, error in errors(seen, rates).items():
            worst[kind] = max(worst.get(kind, 0.0), error)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="base config (input shape, labels)")
    parser.add_argument("--candidates", nargs="*", default=[*CANDIDATES, *SHAPE_PROBES],
                        help="names from kws.training.models.CANDIDATES and this script's SHAPE_PROBES")
    parser.add_argument("--library", default=str(TFLM_LIBRARY), help="the TFLM Arduino library folder")
    parser.add_argument("--out", default="runs/cost_points", help="output folder")
    parser.add_argument("--write-rates", action="store_true", help=f"replace {RATES_FILE.name} with the fit")
    args = parser.parse_args()
    base = config_module.load(args.config)
    out = Path(args.out)
    rows = []
    for name in args.candidates:
        overrides = CANDIDATES[name] if name in CANDIDATES else SHAPE_PROBES[name]
        rows += measure_candidate(name, with_overrides(base, overrides), out, Path(args.library))
    (out / "points.json").write_text(json.dumps(rows, indent=1) + "\n")
    rates = fit(rows)
    in_sample, held_out = errors(rows, rates), leave_one_out_errors(rows)
    print(f"{'candidate':<22} {'kind':<22} {'MACs':>10} {'in':>7} {'out':>7} {'measured':>11} {'estimate':>10} error")
    for row in rows:
        error = row["estimated"] / row["instructions"] - 1
        print(f"{row['candidate']:<22} {row['kind']:<22} {row['macs']:>10,} {row['input_elements']:>7,} "
              f"{row['output_elements']:>7,} {row['instructions']:>11,} {row['estimated']:>10,} {error:+.1%}")
    print(f"\n{'kind':<30} {'rate':<52} {'max error':>9} {'left out':>9}")
    for kind, rate in rates.items():
        terms = ", ".join(f"{term} {value:g}" for term, value in rate.items())
        left_out = f"{held_out[kind]:.1%}" if kind in held_out else "-"
        print(f"{kind:<30} {terms:<52} {in_sample[kind]:>9.1%} {left_out:>9}")
    print(f"wrote {out / 'points.json'}")
    if args.write_rates:
        default = m4_record.load_measurement(DEFAULT_MODEL)
        measurement = json.loads((out / rows[0]["candidate"] / "model" / m4_record.MEASUREMENT_FILE).read_text())
        RATES_FILE.write_text(json.dumps({
            "fitted_by": "scripts/m4_cost_points.py", "candidates": sorted({row["candidate"] for row in rows}),
            "library": measurement["library"], "build": measurement["build"],
            "frontend_per_stride": default["instructions"]["per_frontend_stride"]["mean"],
            "rates": rates,
            "max_error": {kind: round(value, 4) for kind, value in in_sample.items()},
            "max_error_left_out": {kind: round(value, 4) for kind, value in held_out.items()},
        }, indent=2) + "\n")
        print(f"wrote {RATES_FILE}")


if __name__ == "__main__":
    main()
