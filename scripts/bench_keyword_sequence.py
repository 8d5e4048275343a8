"""The listening check of a new user, as a benchmark: keywords (two of each) from speakers the model never trained
on, a second of silence apart, played through a virtual board with the model (`kws stream` to `kws sim`'s pipeline
and recognizer); how many it reports, and how many wrongly (issue target: at least 17 of 20 right, at most 1
wrong). Repeat with other --seed values for other words and orders.

    python scripts/bench_keyword_sequence.py --data ../shared/data/speech_commands_v0.02_test_dev2 --split all
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from kws.board.sim import VirtualBoard
from kws.common.paths import DEFAULT_MODEL
from kws.data import dataset as data
from kws.evaluation import keyword_check
from kws.evaluation.evaluate import ModelDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model folder")
    parser.add_argument("--data", required=True, help="labelled clips of speakers the model did not train on")
    parser.add_argument("--split", default="heldout", help="which of the folder's clips (see kws eval --help)")
    parser.add_argument("--per-keyword", type=int, default=2, help="clips of each keyword")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed: other clips and order")
    parser.add_argument("--backend", default="litert", choices=["litert", "tflm"], help="int8 runtime")
    args = parser.parse_args()
    model = ModelDir(args.model)
    clips = data.select_clips(model.config, [args.data], args.split)
    print(clips.describe())
    for seed in args.seeds:
        seq = keyword_check.sequence(model.config, clips, args.per_keyword, seed)
        with tempfile.TemporaryDirectory() as folder, \
                VirtualBoard(model.path, args.backend, link=Path(folder) / "board") as board:
            detections = keyword_check.run_on_board(str(board.link), seq, model.config.audio.sample_rate)
        result = keyword_check.score(seq, detections)
        print(f"seed {seed}: {result.correct} of {result.keywords} keywords reported right, {result.wrong} wrong "
              f"({len(set(seq.speakers))} speakers); missed: {', '.join(result.missed) or 'none'}; wrong: "
              + (", ".join(f"{heard} as {label}" for heard, label in result.wrong_detections) or "none"))


if __name__ == "__main__":
    main()
