"""The Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) in the folder layout
`kws train` reads: its `recordings/<digit>_<speaker>_<take>.wav` become `<out>/<word>/<speaker>_<take>.wav`.

    git clone https://github.com/Jakobovski/free-spoken-digit-dataset data/fsdd
    python scripts/fsdd_folders.py data/fsdd/recordings data/fsdd_words

The recordings stay at their 8 kHz; every reader resamples them to the config's rate.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", type=Path, help="FSDD's recordings/ folder")
    parser.add_argument("out", type=Path, help="a new folder for <word>/<speaker>_<take>.wav")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists: choose a new folder (nothing is overwritten)")
    copied = 0
    for path in sorted(args.recordings.glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        (args.out / WORDS[int(digit)]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, args.out / WORDS[int(digit)] / f"{speaker}_{take}.wav")
        copied += 1
    print(f"{copied} recordings in {args.out}")


if __name__ == "__main__":
    main()
