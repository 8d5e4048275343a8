"""`kws`: one command line for the whole pipeline. Subcommands import their modules only when they run, so
`kws monitor --help` answers without loading TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("NANO_KWS_CACHE", Path(base) / "nano-kws")) / "features"


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="data folders (Speech Commands, <word>/*.wav folders, kws data synth output)")
    parser.add_argument("--noise", nargs="*", default=[], metavar="PATH",
                        help="extra background-noise files or folders for augmentation")
    parser.add_argument("--no-cache", action="store_true", help="recompute features instead of using the cache")


def _features(config: object, args: argparse.Namespace) -> object:
    from kws.data import features

    return features(config, args.data, args.noise, None if args.no_cache else _cache_dir())


def cmd_data_download(args: argparse.Namespace) -> int:
    from kws import speech_commands

    path = speech_commands.fetch(args.version, Path(args.root), test_set=args.test_set)
    print(path)
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws import synth

    config = config_module.load(args.config)
    words = list(config.keywords.words)
    if config.keywords.unknown and args.unknown_words:
        words += list(config.keywords.unknown_words or synth.UNKNOWN_WORDS_EN)[: args.unknown_words]
    clips = synth.synthesize(words, Path(args.out), language=args.language, voices=args.voices,
                             variants=args.variants, sample_rate=config.audio.sample_rate,
                             clip_samples=config.clip_samples, seed=config.training.seed, workers=args.workers)
    print(f"{len(clips)} clips of {len(words)} words in {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.train import train

    config = config_module.load(args.config)
    data = _features(config, args)
    print(json.dumps(data.summary["clips"]), file=sys.stderr)
    model_path = train(config, data, Path(args.out))
    print(model_path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.export import export

    config = config_module.load(args.config)
    data = _features(config, args)
    result = export(config, Path(args.model), data, Path(args.out), recipe=[" ".join(sys.argv)])
    print(f"{result.out_dir}: model {result.tflite_bytes} B, arena {result.arena_size} B "
          f"(measured {result.arena_measured} B), ops {', '.join(result.ops)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from kws.data import features
    from kws.evaluate import ModelDir, evaluate, format_confusion
    from kws.export import update_card

    model_dir = ModelDir(args.model)
    data = features(model_dir.config, args.data, (), None if args.no_cache else _cache_dir())
    splits = ("train", "validation", "test") if args.split == "all" else (args.split,)
    raw = __import__("numpy").concatenate([data.raw[s] for s in splits])
    targets = __import__("numpy").concatenate([data.targets[s] for s in splits])
    if not len(raw):
        print(f"no clips in split {args.split} of {', '.join(args.data)}", file=sys.stderr)
        return 2
    result = evaluate(model_dir, raw, targets, args.backend)
    result["data"] = {"sources": args.data, "split": args.split}
    print(format_confusion(result["int8"]))
    line = f"int8 accuracy {result['int8']['accuracy']:.4f} on {result['int8']['clips']} clips"
    if "float" in result:
        line += f"; float {result['float']['accuracy']:.4f}"
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.update_card:
        update_card(model_dir.path, {"evaluation": {"split": args.split, "sources": args.data,
                                                    "int8_accuracy": result["int8"]["accuracy"],
                                                    "int8_clips": result["int8"]["clips"],
                                                    "float_accuracy": result.get("float", {}).get("accuracy")}})
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from kws.quickstart import run

    return run(Path(args.out), Path(args.config))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Keyword spotting for the Arduino Nano 33 BLE Sense.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="get or make training data").add_subparsers(dest="data_command",
                                                                                       required=True)
    download = data.add_parser("download", help="download Speech Commands (official archives, checksummed)")
    download.add_argument("--version", default="v0.02", choices=["v0.01", "v0.02"])
    download.add_argument("--root", required=True, help="folder to download and extract into")
    download.add_argument("--test-set", action="store_true", help="the official test-set archive")
    download.set_defaults(handler=cmd_data_download)
    synth = data.add_parser("synth", help="render the config's keywords (and unknown words) with espeak-ng")
    synth.add_argument("--config", required=True)
    synth.add_argument("--out", required=True)
    synth.add_argument("--language", default="en", help="espeak-ng language (en, ar, de, ...)")
    synth.add_argument("--voices", nargs="*", help="espeak-ng voices (default: the language's accents)")
    synth.add_argument("--variants", nargs="*", help="espeak-ng variants such as m3 f2 (default: eight)")
    synth.add_argument("--unknown-words", type=int, default=20, help="how many non-keyword words to render")
    synth.add_argument("--workers", type=int, default=2)
    synth.set_defaults(handler=cmd_data_synth)

    train = commands.add_parser("train", help="train the config's model")
    train.add_argument("--config", required=True)
    _add_data_arguments(train)
    train.add_argument("--out", required=True, help="run folder for the model and its training log")
    train.set_defaults(handler=cmd_train)

    export = commands.add_parser("export", help="int8 .tflite + C array + model_settings.h")
    export.add_argument("--config", required=True)
    export.add_argument("--model", required=True, help="trained model (model.keras from kws train)")
    _add_data_arguments(export)
    export.add_argument("--out", required=True, help="model folder, e.g. models/yes_no")
    export.set_defaults(handler=cmd_export)

    evaluate = commands.add_parser("eval", help="accuracy and confusion, int8 (TFLM) vs float")
    evaluate.add_argument("--model", required=True, help="model folder from kws export")
    evaluate.add_argument("--data", nargs="+", required=True, metavar="DIR")
    evaluate.add_argument("--split", default="all", choices=["all", "train", "validation", "test"])
    evaluate.add_argument("--backend", default="tflm", choices=["tflm", "litert"],
                          help="int8 runtime: tflm (the board's) or litert (identical outputs, faster)")
    evaluate.add_argument("--json", help="write the full result as JSON")
    evaluate.add_argument("--update-card", action="store_true", help="record the accuracy in model_card.json")
    evaluate.add_argument("--no-cache", action="store_true")
    evaluate.set_defaults(handler=cmd_eval)

    quickstart = commands.add_parser("quickstart", help="offline demo: synthetic yes/no → train → export → eval")
    quickstart.add_argument("--out", default="runs/quickstart")
    quickstart.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "configs/quickstart.toml"))
    quickstart.set_defaults(handler=cmd_quickstart)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kws.audio import AudioError
    from kws.config import ConfigError

    try:
        return args.handler(args)
    except (ConfigError, AudioError, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"kws {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kws {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
