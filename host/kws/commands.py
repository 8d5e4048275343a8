"""What each `kws` subcommand does, given its parsed arguments (`kws.cli` parses them and calls `cmd_<name>`): most
hand over to the stage that owns the work, importing it only when the command runs, so `kws monitor --help` answers
without loading TensorFlow. Each returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from kws import cache_dir
from kws.common.paths import TFLM_LIBRARY


def _features(config: object, args: argparse.Namespace, teacher: object | None = None) -> object:
    from kws.data.features import features

    return features(config, args.data, args.noise, None if args.no_cache else cache_dir("features"), args.train_only,
                    getattr(args, "unlabeled", []), teacher)


def cmd_data_download(args: argparse.Namespace) -> int:
    from kws.data import speech_commands

    path = speech_commands.fetch(args.version, Path(args.root), test_set=args.test_set)
    print(path)
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.data import synth

    config = config_module.load(args.config)
    words = list(config.keywords.words)
    if config.keywords.unknown and args.unknown_words:
        words += synth.unknown_words(words, args.unknown_words, config.keywords.unknown_words or synth.UNKNOWN_WORDS_EN)
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


def cmd_data_align(args: argparse.Namespace) -> int:
    from kws.data import align

    report = align.align_recordings(args.transcripts, args.recordings, args.out, words=tuple(args.words),
                                    speaker_rule=args.speaker, clip_ms=args.clip_ms, margin_ms=args.margin_ms,
                                    score_mads=args.score_mads, min_gap_ms=args.min_gap_ms)
    print(align.format_report(report))
    print(f"clips in {args.out}; every token and its outcome in {Path(args.out) / 'alignment.csv'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.training.train import train

    config = config_module.load(args.config)
    if args.unlabeled and not config.teacher.enabled:
        print(f"--unlabeled needs a [teacher] in {args.config} to label the speech", file=sys.stderr)
        return 2
    teacher = None
    if config.teacher.enabled:
        from kws.training.teacher import Teacher

        teacher = Teacher(config)
    data = _features(config, args, teacher)
    print(json.dumps(data.summary["clips"]), file=sys.stderr)
    model_path = train(config, data, Path(args.out), command=args.command_line)
    print(model_path)
    return 0


def _claim_model_folder(out: Path, force: bool) -> None:
    """Refuses to export over an existing model unless forced; forced, removes what described the old model (its
    report/ and model card), so nothing stale sits beside the new one. Checked before any work is done."""
    if not (out / "model.tflite").exists() and not (out / "model_card.json").exists():
        return
    if not force:
        raise FileExistsError(f"{out} already holds a model: choose another --out, or pass --force to replace it "
                              "(its report/, model_card.json and m4_measurement.json are removed)")
    shutil.rmtree(out / "report", ignore_errors=True)
    for stale in ("model_card.json", "m4_measurement.json"):
        (out / stale).unlink(missing_ok=True)


def cmd_export(args: argparse.Namespace) -> int:
    from kws import config as config_module
    from kws.training.export import export

    _claim_model_folder(Path(args.out), args.force)
    config = config_module.load(args.config)
    data = _features(config, args)
    train_log = Path(args.model).parent / "train.json"
    training = json.loads(train_log.read_text()) if train_log.exists() else {}
    recipe = [*args.prepared_by, *(line for line in (training.get("command"), args.command_line) if line)]
    result = export(config, Path(args.model), data, Path(args.out), recipe=recipe,
                    training={key: training[key] for key in ("seconds", "best", "parameters") if key in training})
    print(f"{result.out_dir}: model {result.tflite_bytes} B, arena {result.arena_size} B "
          f"(measured {result.arena_measured} B), ops {', '.join(result.ops)}")
    print(not_calibrated_note(config, args.out, args.data, args.noise))
    return 0


def not_calibrated_note(config: object, out: str, data: list[str], noise: list[str]) -> str:
    """What `kws export` says about the recognizer it wrote: the config's defaults, not yet fitted on streams."""
    rec = config.recognizer
    command = " ".join(["kws calibrate", "--model", shlex.quote(str(out)), "--data", *map(shlex.quote, data)]
                       + (["--noise", *map(shlex.quote, noise)] if noise else []))
    thresholds = (", ".join(f"{word} {rec.thresholds.get(word, rec.threshold)}" for word in config.keywords.words)
                  if rec.thresholds else f"{rec.threshold} for every keyword")
    return (f"recognizer NOT calibrated yet: model_settings.h holds the config's defaults (thresholds {thresholds}, "
            f"{rec.average_window_ms} ms window; KWS_RECOGNIZER_CALIBRATED 0), not fitted to this model. "
            f"Fit per-keyword thresholds on streams and check them on held-out ones with:\n  {command}")


def cmd_eval(args: argparse.Namespace) -> int:
    from kws.data.dataset import select_clips
    from kws.evaluation.evaluate import ModelDir, evaluate, format_confusion
    from kws.frontends.dispatch import raw_batch
    from kws.training.export import update_card

    model_dir = ModelDir(args.model)
    clips = select_clips(model_dir.config, args.data, args.split)
    print(f"scoring {clips.describe()}", file=sys.stderr)
    raw = raw_batch(model_dir.config, clips.audio, len(clips.audio), "features")
    result = evaluate(model_dir, raw, clips.targets, args.backend)
    result["data"] = {"sources": args.data, "split": args.split, "skipped": clips.skipped}
    print(format_confusion(result["int8"]))
    int8 = result["int8"]
    low, high = int8["ci95"]  # always shown: 0.0000 on 3 clips means little, and the interval says so
    line = (f"int8 accuracy {int8['accuracy']:.4f} (95% CI {low:.4f}–{high:.4f}) on {int8['clips']} clips "
            f"({args.split} split)")
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
    from kws.evaluation.report import run

    return run(args.model, args.data, args.noise, args.unseen_noise, args.out, args.stream_minutes, args.stream_snr,
               args.backend, args.split, args.bench, args.seed, command=args.command_line,
               update_card=args.update_card, other_words=args.other_words)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from kws.evaluation.calibrate_run import run

    spread = None if args.spread == "free" else args.spread
    return run(args.model, args.data, args.noise, args.target_fa_per_hour, args.stream_minutes, args.stream_snr,
               args.backend, args.split, args.seed, command=args.command_line, other_word_folders=args.other_words,
               spread=spread)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from kws.quickstart import run

    return run(Path(args.out), Path(args.config))


def cmd_sim(args: argparse.Namespace) -> int:
    from kws.board.sim import run

    return run(args.model, args.audio, args.mic, args.link, args.backend, args.virtual_ppk2, args.ble)


def cmd_monitor(args: argparse.Namespace) -> int:
    from kws.device.monitor import run

    if args.hci and args.ble is None:
        print("kws monitor: error: --hci needs --ble", file=sys.stderr)
        return 2
    return run(args.port, args.log, args.duration, ble=args.ble, hci=args.hci)


def cmd_stream(args: argparse.Namespace) -> int:
    from kws.device.stream import run

    if not args.mic and not args.wav:
        print("kws stream: error: give WAV files or --mic", file=sys.stderr)
        return 2
    device = int(args.mic_device) if args.mic_device and args.mic_device.isdigit() else args.mic_device
    return run(args.port, args.wav, args.mic, args.fast, mic_device=device)


def cmd_bench(args: argparse.Namespace) -> int:
    from kws.device.bench import run

    power_setup = None
    if args.power:
        from kws.device.power import PowerSetup

        power_setup = PowerSetup.parse(args.power, voltage_v=args.power_voltage, ampere_meter=args.ampere_meter,
                                       listen_s=args.listen_seconds)
    return run(args.port, args.data, args.report, args.limit, args.model, split=args.split, power_setup=power_setup)


def cmd_m4(args: argparse.Namespace) -> int:
    from kws.cost.m4 import run

    return run(args.model, args.library or str(TFLM_LIBRARY), args.data, args.split, args.limit, args.save,
               args.out, args.opt, args.float_abi, args.stream_seconds, args.command_line)
