"""The teacher's accuracy on every clip of labelled data folders, to check its front end against published values.

A folder's sub-folders are its words (Speech Commands, official test-set layout included): a word among the
teacher's labels is that class, `_silence_` is silence, and any other word (`_unknown_`, bed, cat, ...) is unknown.
With the MLPerf Tiny reference model and the `mlperf_mfcc` front end, all 2,172 clips of
speech_commands_v0.02_test_dev must score about 93.6% (float) and test_dev2 about 91.3%:

    python scripts/teacher_accuracy.py --model ../shared/models/mlperf_tiny_kws_ref/kws_ref_model_float32.tflite \
        --data ../shared/data/speech_commands_v0.02_test_dev

With --card MODEL_DIR the teacher of that model's config is scored on the clips `kws eval --split SPLIT` scores the
student on, and the model card's `teacher` section (file, md5, source, licence, settings and that accuracy) is
written, so the card shows both on the same clips:

    python scripts/teacher_accuracy.py --model ../shared/models/mlperf_tiny_kws_ref/kws_ref_model_float32.tflite \
        --data ../shared/data/speech_commands_v0.02_test_dev --card models/speech_commands_12 --split validation
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np

from kws.common.paths import repo_relative
from kws.config import TEACHER_LABEL_ALIASES, from_dict
from kws.data import audio
from kws.data import dataset as data
from kws.evaluation.evaluate import ModelDir
from kws.training.export import update_card
from kws.training.teacher import FRONTENDS, Teacher, md5

MLPERF_LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence", "unknown"]


def folder_clips(root: Path) -> list[tuple[Path, str]]:
    """(file, word) of every <root>/<word>/*.wav, the background-noise folder left out."""
    return [(path, path.parent.name) for path in audio.audio_files(root, "*/*") if path.parent.name != "_background_noise_"]


def read(config: object, clips: list[tuple[Path, str]], targets: list[int], skipped: list[str]):  # noqa: ANN201
    """The clips' audio, one at a time; each one's class is appended to `targets`, an unreadable file to `skipped`."""
    for path, word in clips:
        clip = audio.read_audio_or_skip(path, config.audio.sample_rate, skipped)
        if clip is None:
            continue
        word = TEACHER_LABEL_ALIASES.get(word, word)
        targets.append(config.labels.index(word if word in config.labels else "unknown"))
        yield audio.fit_length(clip, config.clip_samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the teacher .tflite (float or int8 input)")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR", help="labelled data folders")
    parser.add_argument("--frontend", default="mlperf_mfcc", choices=list(FRONTENDS))
    parser.add_argument("--labels", nargs="+", default=MLPERF_LABELS, help="the teacher's outputs in order")
    parser.add_argument("--card", metavar="MODEL_DIR",
                        help="score the teacher of this model's config on the clips kws eval scores and write them "
                             "into its model card")
    parser.add_argument("--split", default="validation", choices=list(data.SPLIT_CHOICES),
                        help="with --card: which clips (as kws eval)")
    args = parser.parse_args(argv)
    if args.card:
        return write_card(Path(args.card), Path(args.model), args.data, args.split, shlex.join(["python", *sys.argv]))
    labels = [TEACHER_LABEL_ALIASES.get(label, label) for label in args.labels]
    keywords = [label for label in labels if label not in ("silence", "unknown")]
    config = from_dict({"keywords": {"words": keywords, "silence": "silence" in labels, "unknown": "unknown" in labels},
                        "teacher": {"model": str(Path(args.model).resolve()), "frontend": args.frontend,
                                    "labels": args.labels}})
    teacher = Teacher(config)
    for root in map(Path, args.data):
        clips = folder_clips(root)
        if not clips:
            print(f"{root}: no <word>/*.wav files", file=sys.stderr)
            return 1
        targets, skipped = [], []
        predicted = teacher.probabilities(read(config, clips, targets, skipped)).argmax(axis=1)
        targets = np.asarray(targets)
        correct = predicted == targets
        print(f"{root}: {np.mean(correct):.2%} of {len(targets)} clips ({int(correct.sum())} right; "
              f"{Path(args.model).name}, front end {args.frontend}){f', {len(skipped)} unreadable' if skipped else ''}")
        for index, label in enumerate(config.labels):
            mine = targets == index
            if mine.any():
                print(f"  {label:>8}: {np.mean(correct[mine]):.3f} of {int(mine.sum())}")
    return 0


def write_card(model_dir: Path, teacher_file: Path, sources: list[str], split: str, command: str) -> int:
    """The model's teacher on the student's evaluation clips, into the model card's `teacher` section."""
    model = ModelDir(str(model_dir))
    config = model.config
    settings = config.teacher
    if not settings.enabled:
        print(f"{model_dir}: its config has no [teacher]", file=sys.stderr)
        return 1
    config = dataclasses.replace(config, teacher=dataclasses.replace(settings, model=str(teacher_file.resolve())))
    clips = data.select_clips(config, sources, split)
    predicted = Teacher(config).probabilities(iter(clips.audio)).argmax(axis=1)
    correct = int(np.sum(predicted == clips.targets))
    accuracy = round(correct / len(clips.targets), 4)
    update_card(model_dir, {"teacher": {
        "file": repo_relative(teacher_file), "md5": md5(teacher_file), "source": settings.origin, "license": settings.license,
        "frontend": settings.frontend, "temperature": settings.temperature, "alpha": settings.alpha,
        "alpha_when_wrong": settings.alpha_when_wrong,
        "validation": {"clips": len(clips.targets), "correct": correct, "accuracy": accuracy,
                       "selection": clips.describe()},
        "role": "labels training audio (soft targets); the board runs the student"}}, command)
    print(f"teacher {teacher_file.name}: {accuracy:.4f} on {clips.describe()}; written into {model_dir}/model_card.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
