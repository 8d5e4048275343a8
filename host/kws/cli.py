"""`kws`: one command line for the whole pipeline: the arguments of every subcommand (`build_parser`) and `main`,
which runs the subcommand (`kws.commands`) and turns the errors a user can fix into one line and exit status 2.
Subcommands import their modules only when they run, so `kws monitor --help` answers without loading TensorFlow."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap

from kws import __version__
from kws import commands as handlers
from kws.board.firmware import board_build_flags
from kws.common.defaults import MIN_STREAM_MINUTES, SIM_BLE_HCI, SPREAD, ZERO_EVENT_BOUND, minutes_to_resolve
from kws.common.paths import DEFAULT_MODEL, REPO_ROOT, TFLM_LIBRARY, portable
from kws.data.clips import DEFAULT_SCORING_SPLIT, SPLIT_CHOICES


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="data folders (Speech Commands, <word>/<clip> folders of WAV, FLAC, OGG or MP3, kws data "
                             "synth output)")
    parser.add_argument("--train-only", nargs="*", default=[], metavar="DIR",
                        help="data folders used only for training (synthetic speech beside real speech, so that "
                             "validation and test hold real speakers only)")
    parser.add_argument("--noise", nargs="*", default=[], metavar="PATH",
                        help="extra background-noise files or folders for augmentation")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the features instead of reading them from the cache (~/.cache/nano-kws)")


def _spread(text: str) -> int | str:
    if text == "free":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: a number of grid steps (0, 1, 2, ...) or 'free'")
    return int(text)


def _snr(text: str) -> float | None:
    return None if text == "clean" else float(text)


def _add_scoring_arguments(parser: argparse.ArgumentParser, split: str = DEFAULT_SCORING_SPLIT) -> None:
    """What every command that scores a model on clips shares (eval, report, calibrate): one clip selection."""
    parser.add_argument("--model", required=True, metavar="DIR", help="model folder from kws export")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="data folders; the model config's classes over them")
    _add_split_argument(parser, split)
    parser.add_argument("--backend", default="litert", choices=["tflm", "litert"],
                        help="int8 runtime: litert (bit-identical to tflm, faster) or tflm (the board's)")


def _add_split_argument(parser: argparse.ArgumentParser, split: str) -> None:
    parser.add_argument("--split", default=split, choices=list(SPLIT_CHOICES),
                        help="which clips: heldout = validation + test speakers; all includes the training "
                             "speakers (for a test set kept apart)")


def _add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """What `kws report` and `kws calibrate` share: the noise and the evaluation streams."""
    parser.add_argument("--noise", nargs="*", default=[], metavar="PATH",
                        help="noise sources, each file or folder one source, also the streams' background "
                             "(none given: generated white/pink/brown noise)")
    parser.add_argument("--stream-minutes", type=float, metavar="M",
                        help="length of each evaluation stream (keywords; non-keywords). None given: long enough "
                             "that no false accept would show the false-accepts-per-hour target met at 95%%, "
                             f"{ZERO_EVENT_BOUND} h / target and at least {MIN_STREAM_MINUTES} min "
                             f"({minutes_to_resolve(1.0)} min at 1/h)")
    parser.add_argument("--stream-snr", type=_snr, default=10.0, metavar="DB",
                        help="background level of the streams, dB below the clips ('clean': none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stream construction")
    parser.add_argument("--other-words", nargs="*", default=[], metavar="DIR",
                        help="folders of <word>/<clip> audio files of non-keywords (e.g. Speech Commands v0.01's other "
                             "words) added to the non-keyword streams (calibrate splits them by speaker like the clips)")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it has none worth showing (off, empty, required).

    A default inside the repository (the shipped model, the demo's config) is shown as the user would type it there
    (`models/speech_commands_12`), not as this clone's absolute path; the parsed default stays absolute, so it works
    from any directory. Lines never break at a hyphen or inside a word: `espeak-ng` or a path split over two lines
    reads as two words (and cannot be copied)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == []
        if action.required or unset or action.default == argparse.SUPPRESS or "%(default)" in text:
            return text
        return f"{text} (default: {str(portable(action.default)).replace('%', '%%')})"

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


def _command(commands: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=text, description=text, formatter_class=_HelpWithDefaults)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Keyword spotting for the Arduino Nano 33 BLE Sense.",
                                     formatter_class=_HelpWithDefaults)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = _command(commands, "data", "get or make training data").add_subparsers(dest="data_command",
                                                                                   required=True)
    download = _command(data, "download", "download Speech Commands (official archives, checksummed)")
    download.add_argument("--version", default="v0.02", choices=["v0.01", "v0.02"], help="dataset version")
    download.add_argument("--root", required=True, metavar="DIR", help="folder to download and extract into")
    download.add_argument("--test-set", action="store_true", help="the official test-set archive")
    download.set_defaults(handler=handlers.cmd_data_download)
    synth = _command(data, "synth", "render the config's keywords (and unknown words) with espeak-ng or flite")
    synth.add_argument("--config", required=True, metavar="TOML", help="the config whose words to render")
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder (<word>/*.wav)")
    synth.add_argument("--engine", default="espeak-ng", choices=["espeak-ng", "flite"],
                       help="espeak-ng (any language) or flite (English voices of real speakers, each at 5 "
                            "vocal-tract warps)")
    synth.add_argument("--language", default="en", help="espeak-ng language (en, ar, de, ...)")
    synth.add_argument("--voices", nargs="*", help="espeak-ng voices (none given: the language's accents) or flite "
                                                   "voices (none given: kal16 awb rms slt)")
    synth.add_argument("--variants", nargs="*", help="espeak-ng variants such as m3 f2 (none given: eight)")
    synth.add_argument("--unknown-words", type=int, default=20, metavar="N", help="how many non-keyword words to render")
    synth.add_argument("--workers", type=int, default=2, metavar="N", help="parallel synthesis processes")
    synth.set_defaults(handler=handlers.cmd_data_synth)
    align = _command(data, "align", "cut one-clip word tokens out of transcribed recordings by forced alignment "
                                    "(pocketsphinx, US English)")
    align.add_argument("--transcripts", required=True, metavar="FILE",
                       help="one utterance a line: '<s> WORDS </s> (UTTERANCE)' (Sphinx, AN4) or 'UTTERANCE WORDS' "
                            "(Kaldi, LibriSpeech)")
    align.add_argument("--recordings", required=True, metavar="DIR",
                       help="folder searched for the recordings, each named <UTTERANCE>.<wav|flac|sph|...>")
    align.add_argument("--out", required=True, metavar="DIR", help="new folder for <word>/<speaker>_<utterance>_<n>.wav")
    align.add_argument("--words", nargs="+", default=(), metavar="WORD", help="words to cut (default: every word)")
    align.add_argument("--speaker", default="folder", choices=["folder", "prefix"],
                       help="a recording's speaker: its folder's name, or its name up to the first '-' or '_'")
    align.add_argument("--clip-ms", type=int, default=1000, help="clip length")
    align.add_argument("--margin-ms", type=int, default=30, help="audio kept either side of the aligned word")
    align.add_argument("--score-mads", type=float, default=4.0, metavar="K",
                       help="reject tokens whose acoustic score per frame is K median absolute deviations below "
                            "their word's median")
    align.add_argument("--min-gap-ms", type=int, default=0,
                       help="reject tokens with a neighbour word closer than this (0: connected speech is kept)")
    align.set_defaults(handler=handlers.cmd_data_align)

    train = _command(commands, "train", "train the config's model")
    train.add_argument("--config", required=True, metavar="TOML", help="the problem definition (configs/*.toml)")
    _add_data_arguments(train)
    train.add_argument("--unlabeled", nargs="*", default=[], metavar="DIR",
                       help="folders of any speech (other words, synthetic speech, long recordings cut into 1 s "
                            "windows) that the config's [teacher] labels: training examples with soft targets only")
    train.add_argument("--out", required=True, metavar="DIR", help="run folder for the model and its training log")
    train.set_defaults(handler=handlers.cmd_train)

    export = _command(commands, "export", "int8 .tflite + C array + model_settings.h")
    export.add_argument("--config", required=True, metavar="TOML", help="the config the model was trained with")
    export.add_argument("--model", required=True, metavar="FILE", help="trained model (model.keras from kws train)")
    _add_data_arguments(export)
    export.add_argument("--out", required=True, metavar="DIR", help="model folder, e.g. models/speech_commands_12")
    export.add_argument("--prepared-by", action="append", default=[], metavar="COMMAND",
                        help="a command that made the data or the teacher (e.g. a data set's extraction), put in "
                             "the model card's recipe before the training command; repeat it for several")
    export.add_argument("--force", action="store_true",
                        help="replace the model already in --out, removing its stale report/ and model card")
    export.set_defaults(handler=handlers.cmd_export)

    evaluate = _command(commands, "eval", "accuracy and confusion, int8 (the board's arithmetic) vs float")
    _add_scoring_arguments(evaluate)
    evaluate.add_argument("--json", metavar="FILE", help="write the full result as JSON")
    evaluate.add_argument("--update-card", action="store_true", help="record the accuracy in model_card.json")
    evaluate.set_defaults(handler=handlers.cmd_eval)

    report = _command(commands, "report", "accuracy, noise robustness, streaming FA/h and FRR, device cost and "
                                          "memory: report.md, metrics.json and plots")
    _add_scoring_arguments(report)
    _add_stream_arguments(report)
    report.add_argument("--unseen-noise", nargs="*", default=[], metavar="PATH",
                        help="noise sources never used in training, reported separately as unseen")
    report.add_argument("--out", metavar="DIR", help="report folder (none given: <model>/report)")
    report.add_argument("--update-card", action="store_true",
                        help="record the report in model_card.json even though --out is not the model's report/ "
                             "(a report to <model>/report is always recorded)")
    report.add_argument("--bench", metavar="JSON", help="bench.json of `kws bench` on a board, shown beside the "
                                                        "estimates")
    report.set_defaults(handler=handlers.cmd_report)

    calibrate = _command(commands, "calibrate", "fit per-keyword thresholds, averaging window, suppression and "
                                                "minimum count for a false-accepts-per-hour target on calibration "
                                                "streams, check them on held-out streams of other clips, and write "
                                                "them into the model folder")
    # Tuning on the test speakers would make every later test figure optimistic: calibrate fits on validation.
    _add_scoring_arguments(calibrate, split="validation")
    _add_stream_arguments(calibrate)
    calibrate.add_argument("--target-fa-per-hour", type=float, metavar="X",
                           help="none given: the model config's recognizer.false_accepts_per_hour")
    calibrate.add_argument("--spread", type=_spread, default=SPREAD, metavar="N|free",
                           help="every keyword's threshold within N grid steps (10 points each) of a shared one, so "
                                "that the fit carries over to other speakers; 'free': one threshold per keyword "
                                "unconstrained")
    calibrate.set_defaults(handler=handlers.cmd_calibrate)

    quickstart = _command(commands, "quickstart", "offline demo: synthetic yes/no → train → export → eval")
    quickstart.add_argument("--out", default="runs/quickstart", metavar="DIR", help="folder for everything it makes")
    quickstart.add_argument("--config", default=str(REPO_ROOT / "configs/quickstart.toml"), metavar="TOML",
                            help="the demo's config")
    quickstart.set_defaults(handler=handlers.cmd_quickstart)

    sim = _command(commands, "sim", "a virtual board on a pseudo-terminal, speaking the board's protocol")
    sim.add_argument("--model", default=str(DEFAULT_MODEL), metavar="DIR",
                     help="model folder from kws export; the default is the shipped default model")
    source = sim.add_mutually_exclusive_group()
    source.add_argument("--audio", metavar="WAV", help="the board's own input: a recording played in real time, looped")
    source.add_argument("--mic", action="store_true", help="the board's own input: the host's microphone")
    sim.add_argument("--link", metavar="PATH", help="keep a symlink to the pty here (a stable --port for the tools)")
    sim.add_argument("--backend", default="tflm", choices=["tflm", "litert"],
                     help="int8 runtime: tflm (the board's) or litert (bit-identical, faster)")
    sim.add_argument("--virtual-ppk2", action="store_true",
                     help="also a virtual PPK2 whose current trace and marker channels follow the board's stages "
                          "(try kws bench --power ppk2:PATH without hardware)")
    sim.add_argument("--ble", nargs="?", const=SIM_BLE_HCI, metavar="HCI_TRANSPORT",
                     help="also the board's Bluetooth LE service on a virtual radio whose host adapter speaks HCI "
                          f"on this bumble transport (default {SIM_BLE_HCI}; pty:PATH for btattach); "
                          "kill -USR1 drops the connection")
    sim.set_defaults(handler=handlers.cmd_sim)

    port_help = "serial port (none given: the Arduino found by USB vendor id)"
    monitor = _command(commands, "monitor", "print a board's detections and latency live")
    link = monitor.add_mutually_exclusive_group()
    link.add_argument("--port", help=port_help)
    link.add_argument("--ble", nargs="?", const="", metavar="NAME|ADDRESS",
                      help="over Bluetooth LE instead: the board with this name ('nano-kws <model id>' or the id "
                           "alone) or address; none given: the first board advertising the nano-kws service")
    monitor.add_argument("--hci", metavar="TRANSPORT",
                         help="with --ble: a bumble HCI transport instead of the system's Bluetooth (tcp-client:"
                              "127.0.0.1:PORT for kws sim --ble, usb:0 for a dongle)")
    monitor.add_argument("--log", metavar="FILE", help="append one JSON object per detection")
    monitor.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (none given: Ctrl-C)")
    monitor.set_defaults(handler=handlers.cmd_monitor)

    stream = _command(commands, "stream", "send audio to the board (host-stream mode), print its detections")
    stream.add_argument("--port", help=port_help)
    stream.add_argument("--mic", action="store_true", help="stream the host's microphone until Ctrl-C, with its "
                                                               "level every 5 s and a warning when it clips")
    stream.add_argument("--mic-device", metavar="DEVICE",
                        help="input device for --mic: an index or part of a name from `python -m sounddevice` "
                             "(none given: the system default; 'pulse' converts any rate to the board's)")
    stream.add_argument("wav", nargs="*", metavar="WAV", help="recordings to stream, one after another")
    stream.add_argument("--fast", action="store_true", help="as fast as the board takes audio, not in real time")
    stream.set_defaults(handler=handlers.cmd_stream)

    bench = _command(commands, "bench", "accuracy, latency, throughput and energy on the board")
    bench.add_argument("--port", help=port_help)
    bench.add_argument("--data", required=True, metavar="DIR", help="labelled clips (a data source kws train reads)")
    _add_split_argument(bench, DEFAULT_SCORING_SPLIT)
    bench.add_argument("--report", metavar="DIR", help="write bench.json, bench.md and plots here")
    bench.add_argument("--limit", type=int, metavar="N", help="a seeded random sample of N clips (none given: all)")
    bench.add_argument("--model", metavar="DIR", help="the board's model folder (none given: models/<HELLO model>)")
    bench.add_argument("--power", metavar="MONITOR",
                       help="also measure energy with a power monitor and the firmware's marker pins (built with "
                            "-DKWS_MARKER=1; wiring in firmware/README.md): ppk2[:PORT] or joulescope[:SERIAL]")
    bench.add_argument("--power-voltage", type=float, default=3.3, metavar="V",
                       help="the PPK2's source voltage, or with --ampere-meter the supply's voltage")
    bench.add_argument("--ampere-meter", action="store_true",
                       help="the PPK2 in series with the board's own supply instead of powering it")
    bench.add_argument("--listen-seconds", type=float, default=10.0, metavar="S",
                       help="with --power: the always-listening segment measured after the clips")
    bench.set_defaults(handler=handlers.cmd_bench)

    board_opt, board_float_abi = board_build_flags()
    m4 = _command(commands, "m4", "run the firmware's front end and model runner with the pinned TFLM library on a "
                                  "Cortex-M4 (QEMU): agreement with the host and instructions per layer")
    m4.add_argument("--model", default=str(DEFAULT_MODEL), metavar="DIR", help="exported model folder")
    m4.add_argument("--data", required=True, metavar="DIR", help="labelled clips (a data source kws train reads)")
    _add_split_argument(m4, DEFAULT_SCORING_SPLIT)
    m4.add_argument("--limit", type=int, metavar="N", help="a seeded random sample of N clips (none given: all)")
    m4.add_argument("--library", metavar="DIR",
                    help=f"the TFLM Arduino library folder (none given: {TFLM_LIBRARY.relative_to(REPO_ROOT)} in "
                         "the repository, where pio pkg install -e nano33ble puts the pinned one)")
    m4.add_argument("--save", action="store_true",
                    help="write m4_measurement.json into the model folder (the card and report read it there)")
    m4.add_argument("--out", metavar="FILE", help="also write the measurement to this file")
    m4.add_argument("--opt", default=board_opt, choices=["-Os", "-O2", "-O3"],
                    help="optimisation level (the board build's, or another to compare)")
    m4.add_argument("--float-abi", nargs="+", default=board_float_abi, choices=["soft", "softfp"],
                    help="float ABI (the board build's, or another to compare); a second one (soft softfp: the "
                         "mbed core's own, as the Arduino IDE builds) is built and checked for agreement too")
    m4.add_argument("--stream-seconds", type=float, default=0, metavar="S",
                    help="also run a recording of S seconds built from the clips (keywords and unknown words over "
                         "the data's silence clips) through the firmware's pipeline, stride by stride without a "
                         "reset, and compare every inference and detection with the host's streaming pipeline")
    m4.set_defaults(handler=handlers.cmd_m4)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["kws", *argv])  # for the model card's recipe
    from kws.config import ConfigError
    from kws.data.audio import AudioError

    name = " ".join(filter(None, (args.command, getattr(args, "data_command", None))))
    try:
        return args.handler(args)
    except (ConfigError, AudioError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as error:
        print(f"kws {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kws {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
