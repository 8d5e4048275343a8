"""The README's first command: the whole pipeline offline, on synthetic yes/no speech and generated noise.

synthesize (espeak-ng) -> features -> train -> int8 export -> evaluate in TFLM -> run the test clips through the
virtual board -> print a short report with where everything is.
"""

from __future__ import annotations

import json
from pathlib import Path

from kws import config as config_module


def run(out: Path, config_path: Path) -> int:
    from kws.cost.estimate import estimate_model
    from kws.data import synth
    from kws.data.features import features
    from kws.evaluation.evaluate import ModelDir, evaluate, format_confusion
    from kws.training.export import export, update_card
    from kws.training.train import train

    config = config_module.load(config_path)
    out.mkdir(parents=True, exist_ok=True)
    words = list(config.keywords.words) + list(config.keywords.unknown_words)
    print(f"1/5 synthesizing {len(words)} words with espeak-ng into {out / 'synth'}")
    synth.synthesize(words, out / "synth", sample_rate=config.audio.sample_rate, clip_samples=config.clip_samples,
                     seed=config.training.seed)
    print("2/5 features (TFLM microfrontend) and training")
    data = features(config, [out / "synth"], cache_dir=out / "cache")
    model_path = train(config, data, out / "run", verbose=False)
    print("3/5 int8 export")
    model_dir_path = out / "model"
    exported = export(config, model_path, data, model_dir_path,
                      recipe=[f"kws quickstart --out {out} --config {config_path}"])
    print("4/5 evaluation on held-back synthetic speakers (int8 in the TFLM runtime)")
    model_dir = ModelDir(model_dir_path)
    result = evaluate(model_dir, data.raw["test"], data.targets["test"])
    update_card(model_dir_path, {"evaluation": {"data": "quickstart synthetic speech, held-back speakers",
                                                "int8_accuracy": result["int8"]["accuracy"],
                                                "int8_clips": result["int8"]["clips"],
                                                "float_accuracy": result["float"]["accuracy"]}})
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    print("5/5 the test clips on the virtual board")
    board = _virtual_board_check(model_dir_path, out / "synth", out)

    cost = estimate_model(model_dir.tflite, config.board.clock_hz, config.board.cycles_per_instruction)
    print()
    print(f"== nano-kws quickstart: {config.name} ({', '.join(config.labels)}) ==")
    print(format_confusion(result["int8"]))
    print(f"int8 accuracy {result['int8']['accuracy']:.3f} on {result['int8']['clips']} held-back clips "
          f"(95% CI {result['int8']['ci95'][0]:.3f}-{result['int8']['ci95'][1]:.3f}); "
          f"float {result['float']['accuracy']:.3f}")
    print(f"model {exported.tflite_bytes} B flash, arena {exported.arena_size} B; "
          f"{cost.macs:,} MACs, estimated {cost.inference_us / 1000:.1f} ms per inference on the Cortex-M4 at "
          f"{config.board.clock_hz / 1e6:.0f} MHz")
    print(board)
    print(f"files: model {model_dir_path} (model_data.cc, model_settings.h, model_card.json), "
          f"training log {out / 'run'}, evaluation {out / 'eval.json'}")
    return 0


def _virtual_board_check(model_dir: Path, data_dir: Path, out: Path) -> str:
    """Plays the held-back clips to the virtual board through host-stream mode, as `kws bench` does to a board."""
    import io

    from kws.board.sim import VirtualBoard
    from kws.device import bench

    log = io.StringIO()
    with VirtualBoard(model_dir, backend="tflm") as board:
        bench.run(board.path, str(data_dir), str(out / "bench"), None, str(model_dir), out=log, split="test")
    summary = json.loads((out / "bench" / "bench.json").read_text())
    accuracy, energy = summary["accuracy"], summary["energy"]
    return (f"virtual board: {accuracy['correct']}/{accuracy['clips']} clips right "
            f"({accuracy['accuracy']:.3f}) through the serial protocol, the streaming front end and the firmware's "
            f"recognizer code; estimated {energy['inference_us'] / 1000:.1f} ms and {energy['inference_uj']:.0f} µJ "
            f"per inference on the board (report: {out / 'bench'})")
