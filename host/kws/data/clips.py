"""The unit every dataset reader produces: one labelled audio file and where it belongs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "validation", "test")
# The clips a scoring command (eval, report, calibrate, bench) uses, by --split. Held-out (validation + test) is the
# default: it is the honest figure whatever the folder, and a folder kept apart as a test set (only a test.csv) is
# all test clips anyway. `all` includes the training speakers.
SPLIT_CHOICES = {"heldout": ("validation", "test"), "validation": ("validation",), "test": ("test",),
                 "train": ("train",), "all": SPLITS}
DEFAULT_SCORING_SPLIT = "heldout"


@dataclass(frozen=True)
class Clip:
    """One audio file of a dataset.

    `word` is what is spoken (the folder name: a keyword, another word, or `_silence_`/`_background_noise_`);
    mapping words to the model's classes (keywords, `unknown`, `silence`) is the config's job, not the reader's.
    `speaker` keys the speaker-disjoint split.
    """

    path: Path
    word: str
    speaker: str
    split: str
