"""`kws`: one command line for the whole pipeline. Subcommands import their modules only when they run, so
`kws monitor --help` answers without loading TensorFlow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kws import cache_dir


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="data folders (Speech Commands, <word>/*.wav folders, kws data synth output)")
    parser.add_argument("--train-only", nargs="*", default=[], metavar="DIR",
                        help="data folders used only for training (synthetic speech beside real speech, so that "
                             "validation and test hold real speakers only)")
    parser.add_argument("--noise", nargs="*", default=[], metavar="PATH",
                        help="extra background-noise files or folders for augmentation")
    parser.add_argument("--no-cache", action="store_true", help="recompute features instead of using the cache")


def _features(config: object, args: argparse.Namespace) -> object:
    from kws.data import features

    return features(config, args.data, args.noise, None if args.no_cache else cache_dir("features"), args.train_only)


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
    common = {"sample_rate": config.audio.sample_rate, "clip_samples": config.clip_samples,
              "seed": config.training.seed, "workers": args.workers}
    if args.engine == "flite":
        if args.language != "en" or args.variants:
            print("kws data synth: error: flite speaks English only and has no --variants", file=sys.stderr)
            return 2
        clips = synth.synthesize_flite(words, Path(args.out), voices=args.voices or synth.FLITE_VOICES, **common)
    else:
        clips = synth.synthesize(words, Path(args.out), language=args.language, voices=args.voices,
                                 variants=args.variants, **common)
    print(f"{len(clips)} clips of {len(words)} words in {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.train import train

    config = config_module.load(args.config)
    data = _features(config, args)
    print(json.dumps(data.summary["clips"]), file=sys.stderr)
    model_path = train(config, data, Path(args.out), command=args.command_line)
    print(model_path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.export import export

    config = config_module.load(args.config)
    data = _features(config, args)
    train_log = Path(args.model).parent / "train.json"
    training = json.loads(train_log.read_text()) if train_log.exists() else {}
    recipe = [line for line in (training.get("command"), args.command_line) if line]
    result = export(config, Path(args.model), data, Path(args.out), recipe=recipe,
                    training={key: training[key] for key in ("seconds", "best", "parameters") if key in training})
    print(f"{result.out_dir}: model {result.tflite_bytes} B, arena {result.arena_size} B "
          f"(measured {result.arena_measured} B), ops {', '.join(result.ops)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from kws.data import empty_split_message, features
    from kws.evaluate import ModelDir, evaluate, format_confusion
    from kws.export import update_card

    model_dir = ModelDir(args.model)
    data = features(model_dir.config, args.data, (), None if args.no_cache else cache_dir("features"))
    splits = ("train", "validation", "test") if args.split == "all" else (args.split,)
    import numpy as np

    # The split's own clips only: the train split also holds augmented copies, which are not clips to score.
    raw, targets = (np.concatenate(arrays) for arrays in zip(*(data.clips(s) for s in splits), strict=True))
    if not len(raw):
        print(empty_split_message(model_dir.config, args.split, args.data), file=sys.stderr)
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
        update_card(model_dir.path, {"evaluation": {"command": args.command_line, "split": args.split,
                                                    "sources": args.data,
                                                    "int8_accuracy": result["int8"]["accuracy"],
                                                    "int8_clips": result["int8"]["clips"],
                                                    "float_accuracy": result.get("float", {}).get("accuracy")}},
                    args.command_line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from kws.report import run

    return run(args.model, args.data, args.noise, args.unseen_noise, args.out, args.stream_minutes, args.stream_snr,
               args.backend, args.split, args.bench, args.seed, command=" ".join(["kws", *sys.argv[1:]]))


def cmd_calibrate(args: argparse.Namespace) -> int:
    from kws.calibrate import run

    return run(args.model, args.data, args.noise, args.target_fa_per_hour, args.stream_minutes, args.stream_snr,
               args.backend, args.split, args.seed, command=" ".join(["kws", *sys.argv[1:]]))


def _snr(text: str) -> float | None:
    return None if text == "clean" else float(text)


def _add_stream_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    """What `kws report` and `kws calibrate` share: the model, the held-out data and the evaluation streams."""
    parser.add_argument("--model", required=True, help="model folder from kws export")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="data folders; the model config's classes over them")
    parser.add_argument("--split", default=split, choices=["heldout", "validation", "test", "all"],
                        help=f"which clips (heldout: validation + test; default {split})")
    parser.add_argument("--noise", nargs="*", default=[], metavar="PATH",
                        help="noise sources, each file or folder one source (default: generated white/pink/brown); "
                             "also the streams' background")
    parser.add_argument("--stream-minutes", type=float, default=10.0, metavar="M",
                        help="length of each evaluation stream (keywords; non-keywords)")
    parser.add_argument("--stream-snr", type=_snr, default=10.0, metavar="DB",
                        help="background level of the streams, dB below the clips ('clean': none)")
    parser.add_argument("--backend", default="litert", choices=["tflm", "litert"],
                        help="int8 runtime: litert (default, identical outputs, faster) or tflm (the board's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stream construction")


def cmd_quickstart(args: argparse.Namespace) -> int:
    from kws.quickstart import run

    return run(Path(args.out), Path(args.config))


def cmd_sim(args: argparse.Namespace) -> int:
    from kws.sim import run

    return run(args.model, args.audio, args.mic, args.link, args.backend)


def cmd_monitor(args: argparse.Namespace) -> int:
    from kws.monitor import run

    return run(args.port, args.log, args.duration)


def cmd_stream(args: argparse.Namespace) -> int:
    from kws.stream import run

    if not args.mic and not args.wav:
        print("kws stream: error: give WAV files or --mic", file=sys.stderr)
        return 2
    return run(args.port, args.wav, args.mic, args.fast)


def cmd_bench(args: argparse.Namespace) -> int:
    from kws.bench import run

    return run(args.port, args.data, args.report, args.limit, args.model, split=args.split)


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
    synth = data.add_parser("synth", help="render the config's keywords (and unknown words) with espeak-ng or flite")
    synth.add_argument("--config", required=True)
    synth.add_argument("--out", required=True)
    synth.add_argument("--engine", default="espeak-ng", choices=["espeak-ng", "flite"],
                       help="espeak-ng (any language) or flite (English voices of real speakers, each at 5 "
                            "vocal-tract warps)")
    synth.add_argument("--language", default="en", help="espeak-ng language (en, ar, de, ...)")
    synth.add_argument("--voices", nargs="*", help="espeak-ng voices (default: the language's accents) or flite "
                                                   "voices (default: kal16 awb rms slt)")
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

    report = commands.add_parser("report", help="accuracy, noise robustness, streaming FA/h and FRR, device cost "
                                                "and memory: report.md, metrics.json and plots")
    _add_stream_arguments(report, split="heldout")
    report.add_argument("--unseen-noise", nargs="*", default=[], metavar="PATH",
                        help="noise sources never used in training, reported separately as unseen")
    report.add_argument("--out", metavar="DIR", help="report folder (default: <model>/report)")
    report.add_argument("--bench", metavar="JSON", help="bench.json of `kws bench` on a board, shown beside the "
                                                        "estimates")
    report.set_defaults(handler=cmd_report)

    calibrate = commands.add_parser("calibrate", help="tune the recognizer for a false-accepts-per-hour target and "
                                                      "write it into the model folder")
    _add_stream_arguments(calibrate, split="validation")
    calibrate.add_argument("--target-fa-per-hour", type=float, metavar="X",
                           help="default: the model config's recognizer.false_accepts_per_hour")
    calibrate.set_defaults(handler=cmd_calibrate)

    quickstart = commands.add_parser("quickstart", help="offline demo: synthetic yes/no → train → export → eval")
    quickstart.add_argument("--out", default="runs/quickstart")
    quickstart.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "configs/quickstart.toml"))
    quickstart.set_defaults(handler=cmd_quickstart)

    sim = commands.add_parser("sim", help="a virtual board on a pseudo-terminal, speaking the board's protocol")
    sim.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models/yes_no"),
                     help="model folder from kws export")
    source = sim.add_mutually_exclusive_group()
    source.add_argument("--audio", metavar="WAV", help="the board's own input: a recording played in real time, looped")
    source.add_argument("--mic", action="store_true", help="the board's own input: the host's microphone")
    sim.add_argument("--link", metavar="PATH", help="keep a symlink to the pty here (a stable --port for the tools)")
    sim.add_argument("--backend", default="tflm", choices=["tflm", "litert"],
                     help="int8 runtime: tflm (the board's) or litert (identical outputs, faster)")
    sim.set_defaults(handler=cmd_sim)

    port_help = "serial port (default: the Arduino found by USB vendor id)"
    monitor = commands.add_parser("monitor", help="print a board's detections and latency live")
    monitor.add_argument("--port", help=port_help)
    monitor.add_argument("--log", metavar="FILE", help="append one JSON object per detection")
    monitor.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    monitor.set_defaults(handler=cmd_monitor)

    stream = commands.add_parser("stream", help="send audio to the board (host-stream mode), print its detections")
    stream.add_argument("--port", help=port_help)
    stream.add_argument("--mic", action="store_true", help="stream the host's microphone until Ctrl-C")
    stream.add_argument("wav", nargs="*", metavar="WAV", help="recordings to stream, one after another")
    stream.add_argument("--fast", action="store_true", help="as fast as the board takes audio, not in real time")
    stream.set_defaults(handler=cmd_stream)

    bench = commands.add_parser("bench", help="accuracy, latency, throughput and energy on the board")
    bench.add_argument("--port", help=port_help)
    bench.add_argument("--data", required=True, metavar="DIR", help="labelled clips (a data source kws train reads)")
    bench.add_argument("--report", metavar="DIR", help="write bench.json, bench.md and plots here")
    bench.add_argument("--limit", type=int, metavar="N", help="a seeded random sample of N clips")
    bench.add_argument("--model", metavar="DIR", help="the board's model folder (default: models/<HELLO model>)")
    bench.add_argument("--split", choices=["train", "validation", "test"], help="only the clips of this split")
    bench.set_defaults(handler=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    import shlex

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["kws", *argv])  # for the model card's recipe
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
