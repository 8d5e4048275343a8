"""From audio folders to the model's classes: indexing, class mapping, loading, augmentation, cached features.

A data source is a folder in one of these layouts (detected, never configured):
- Speech Commands (training archive or official test-set layout; `kws.data.speech_commands`),
- a folder dataset `<root>/<word>/<clip>` (WAV, FLAC, OGG/Opus, MP3 or SPHERE: `kws.data.audio.SUFFIXES`) with optional
  `train.csv`/`val.csv`/`test.csv` (columns `file` and `class` or `label`) giving its own split, otherwise a
  deterministic speaker-disjoint split from the file-name prefix (`<speaker>_...`, see `speaker_split`). Synthetic
  speech from `kws data synth` is one too.

The official Speech Commands *test-set* layout holds only test speakers (the official hash rule puts nearly all of
them in "test"), so when it is used as training data its clips are re-split by speaker with `speaker_split`.

The config maps spoken words to classes: each keyword is its own class; other words become `unknown`; Speech
Commands' `_silence_` clips and crops of background noise become `silence`. A source given as `train_only`
(synthetic speech beside real recordings) contributes to the training split alone.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kws.config import Config, ConfigError
from kws.config_schema import Split as SplitConfig
from kws.data import audio
from kws.data.augment import generated_noise, noise_crop, rms
from kws.data.clips import SPLIT_CHOICES, SPLITS, Clip

SILENCE_WORDS = {"_silence_"}
NOISE_WORD = "_background_noise_"
_CSV_SPLITS = {"train.csv": "train", "val.csv": "validation", "validation.csv": "validation", "test.csv": "test"}


class DataError(ValueError):
    """A data source that cannot be used; the message names the path and why."""


DEFAULT_SPLIT = SplitConfig()


def index_source(root: str | Path, split: SplitConfig = DEFAULT_SPLIT) -> list[Clip]:
    """Every clip of one data source, with its word, speaker and split (`split`: the shares of a speaker split)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of audio")
    if any((root / name).exists() for name in _CSV_SPLITS):
        return _index_csv(root)
    markers = ("_background_noise_", "_silence_", "_unknown_", "validation_list.txt", "testing_list.txt")
    if not any((root / marker).exists() for marker in markers):
        return _index_folders(root, split)
    from kws.data import speech_commands

    clips = speech_commands.index(root)
    if (root / "_unknown_").is_dir():  # the official test-set layout
        clips = [replace(clip, split=speaker_split(clip.speaker, split)) for clip in clips]
    return clips


def speaker_of(path: Path) -> str:
    """The speaker part of a file name: everything before the first '_' (Speech Commands, Arabic commands, synth)."""
    return path.stem.split("_", 1)[0] if "_" in path.stem else path.stem


def speaker_split(speaker: str, split: SplitConfig = DEFAULT_SPLIT) -> str:
    """A deterministic speaker-disjoint split: a speaker's clips all land in one split, decided by a hash of its
    name (salted, so it does not reproduce the official Speech Commands assignment)."""
    bucket = int(hashlib.sha1(f"nano-kws:{speaker}".encode()).hexdigest(), 16) % 100
    if bucket < split.validation_percent:
        return "validation"
    return "test" if bucket < split.validation_percent + split.test_percent else "train"


def _index_folders(root: Path, split: SplitConfig) -> list[Clip]:
    clips = []
    for path in audio.audio_files(root, "*/*"):
        speaker = speaker_of(path)
        clips.append(Clip(path, path.parent.name, speaker, speaker_split(speaker, split)))
    if not clips:
        raise DataError(f"{root}: no <word>/<clip> audio files ({', '.join(audio.SUFFIXES)}) found")
    return clips


def _index_csv(root: Path) -> list[Clip]:
    clips = []
    for name, split in _CSV_SPLITS.items():
        table = root / name
        if not table.exists():
            continue
        with table.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            label_column = "class" if "class" in (reader.fieldnames or ()) else "label"
            if "file" not in (reader.fieldnames or ()) or label_column not in (reader.fieldnames or ()):
                raise DataError(f"{table}: needs the columns 'file' and 'class' (or 'label'), has {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                path = root / row["file"]
                if not row["file"] or not row[label_column]:
                    raise DataError(f"{table}:{line}: empty file or class")
                clips.append(Clip(path, row[label_column], speaker_of(path), split))
    return sorted(clips, key=lambda clip: str(clip.path))


@dataclass
class Split:
    """The clips of one split, as class indices and audio."""

    paths: list[Path] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)


@dataclass
class Dataset:
    """Labelled one-clip audio per split, the noise for augmentation, and what was skipped and why."""

    labels: tuple[str, ...]
    splits: dict[str, Split]
    noise: list[np.ndarray]
    skipped: list[str]
    sources: list[str]
    sample_rate: int
    train_only: list[str] = field(default_factory=list)
    # one-second windows of the `unlabeled` folders: training examples that only a teacher labels (targets -1)
    unlabeled: Split = field(default_factory=Split)
    unlabeled_sources: list[str] = field(default_factory=list)
    # per source, keyword and split: how many speakers say it (a keyword's 300 clips of 6 speakers are not 300 of 60)
    keyword_speakers: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def summary(self) -> dict:
        """Clip counts per split and class, for logs and the model card."""
        counts = {name: dict(sorted(Counter(self.labels[t] for t in split.targets).items()))
                  for name, split in self.splits.items()}
        summary = {"sources": self.sources, "train_only": self.train_only, "clips": counts,
                   "skipped": len(self.skipped),
                   "noise_seconds": round(sum(len(n) for n in self.noise) / self.sample_rate, 1),
                   "keyword_speakers": self.keyword_speakers}
        if self.unlabeled_sources:
            summary["unlabeled"] = {"sources": self.unlabeled_sources, "clips": len(self.unlabeled.audio)}
        return summary


def load(config: Config, sources: list[str | Path], noise: list[str | Path] = (), seed: int | None = None,
         splits: tuple[str, ...] = SPLITS, train_only: list[str | Path] = (), for_training: bool = True,
         unlabeled: list[str | Path] = ()) -> Dataset:
    """Indexes the sources, maps words to the config's classes, balances silence/unknown and loads the audio.

    Every clip of a `train_only` source is a training clip (synthetic speech beside real speech: validation and
    test then hold only real speakers). Unknown words are drawn per source, `unknown_share` times that source's
    clips per keyword, so a small real set keeps its own unknown words next to a large synthetic one; the draw is
    seeded by the source's folder name, so a held-out split is the same clips whatever other sources are loaded.
    Only the audio of `splits` is read (the others come back empty), but every split's clips are still drawn, so a
    held-out split holds exactly the clips it holds when all are loaded (`kws eval` and `kws report` agree).
    Loaded `for_training`, every keyword must have training clips; to evaluate, a source may hold no training
    clips at all (a test set kept apart, e.g. a folder with only a test.csv). `unlabeled` folders of any speech
    become training examples without a class (`load_unlabeled`), for a teacher to label.
    """
    seed = config.training.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    indexed = [(Path(source), index_source(source, config.split)) for source in sources]
    indexed += [(Path(source), [replace(clip, split="train") for clip in index_source(source, config.split)])
                for source in train_only]
    clips = [clip for _, source_clips in indexed for clip in source_clips]
    labels = config.labels
    keyword_index = {word: labels.index(word) for word in config.keywords.words}
    if for_training:
        _check_keywords(config, clips, [*sources, *train_only])

    skipped: list[str] = []
    noise_paths = [clip.path for clip in clips if clip.word == NOISE_WORD]
    noise_paths += [config.resolve(p) if not Path(p).is_absolute() else Path(p) for p in config.augment.noise]
    noise_paths += [Path(p) for p in noise]
    noise_audio = load_noise(noise_paths, config.audio.sample_rate, skipped) or generated_noise(
        config.audio.sample_rate, rng)

    loaded = {}
    for split_name in SPLITS:
        in_split = [clip for clip in clips if clip.split == split_name and clip.word != NOISE_WORD]
        keyword_clips = [clip for clip in in_split if clip.word in keyword_index]
        chosen = [(clip.path, keyword_index[clip.word]) for clip in keyword_clips]
        if config.keywords.unknown:
            for source, source_clips in indexed:
                chosen += [(clip.path, labels.index("unknown"))
                           for clip in _draw_unknown(config, source, source_clips, split_name, seed)]
        split = Split()
        for path, target in chosen if split_name in splits else ():
            clip_audio = audio.read_audio_or_skip(path, config.audio.sample_rate, skipped)
            if clip_audio is None:
                continue
            split.paths.append(path)
            split.targets.append(target)
            split.audio.append(audio.fit_length(clip_audio, config.clip_samples))
        if config.keywords.silence:
            # Drawn for every split: the crops come from the shared rng, so skipping one would change the next.
            per_keyword = len(keyword_clips) / max(1, len(config.keywords.words))
            _add_silence(config, split, in_split, round(config.keywords.silence_share * per_keyword), noise_audio, rng,
                         skipped)
        loaded[split_name] = split if split_name in splits else Split()
    unlabeled_split = load_unlabeled(config, unlabeled, skipped) if "train" in splits else Split()
    if skipped:
        print(f"skipped {len(skipped)} unreadable files:\n  " + "\n  ".join(skipped), file=sys.stderr)
    return Dataset(labels, loaded, noise_audio, skipped, [str(s) for s in sources], config.audio.sample_rate,
                   [str(s) for s in train_only], unlabeled_split, [str(s) for s in unlabeled],
                   _keyword_speakers(config, indexed))


def _keyword_speakers(config: Config, indexed: list[tuple[Path, list[Clip]]]) -> dict[str, dict[str, dict[str, int]]]:
    speakers: dict[str, dict[str, dict[str, int]]] = {}
    for source, clips in indexed:
        said: dict[tuple[str, str], set[str]] = defaultdict(set)
        for clip in clips:
            if clip.word in config.keywords.words:
                said[clip.word, clip.split].add(clip.speaker)
        for word in config.keywords.words:
            per_split = {split: len(said[word, split]) for split in SPLITS if said[word, split]}
            if per_split:
                speakers.setdefault(str(source), {})[word] = per_split
    return speakers


def load_unlabeled(config: Config, folders: list[str | Path], skipped: list[str]) -> Split:
    """Every audio file below the folders (or the files given) as one-clip windows with target -1: a clip of up to one clip
    length is padded to it, a longer recording cut into consecutive windows (a last part shorter than half a clip is
    dropped). Unreadable files are named in `skipped`.

    Only speakers whom the config's speaker split puts in training are used: `kws calibrate` and `kws report` play
    the other speakers of the same folders (`--other-words`) as unseen non-keyword speech."""
    split = Split()
    held_back = 0
    for folder in map(Path, folders):
        if not folder.exists():
            raise DataError(f"{folder}: unlabeled speech folder not found")
        for path in audio.audio_files(folder) if folder.is_dir() else [folder]:
            if speaker_split(speaker_of(path), config.split) != "train":
                held_back += 1
                continue
            samples = audio.read_audio_or_skip(path, config.audio.sample_rate, skipped)
            if samples is None:
                continue
            length = config.clip_samples
            starts = range(0, max(1, len(samples) - length // 2), length) if len(samples) > length else [0]
            for start in starts:
                split.paths.append(path if len(starts) == 1 else Path(f"{path}#{start // length}"))
                split.targets.append(-1)
                split.audio.append(audio.fit_length(samples[start:start + length], length))
    if held_back:
        print(f"unlabeled speech: {held_back} files of validation/test speakers held back", file=sys.stderr)
    return split


# Fewer clips than this and a scoring command says so: at 50 clips a 95% interval of an accuracy near 0.9 already
# spans 0.79-0.96, and a folder of one's own split by speaker leaves a held-out split of a handful of clips.
FEW_CLIPS = 50


@dataclass
class Clips:
    """The labelled one-second clips a command scores, and which selection they are."""

    audio: list[np.ndarray]  # int16, clip_samples each
    targets: np.ndarray
    paths: list[Path]  # generated silence crops are named "<silence i>"
    sources: list[str]
    split: str
    skipped: list[str]  # every unreadable file of the sources, in the split or not
    files: int = 0  # audio files in the sources, every split

    def counts(self, labels: tuple[str, ...]) -> dict[str, int]:
        return {label: int(np.sum(self.targets == i)) for i, label in enumerate(labels)}

    def describe(self) -> str:
        """What every scoring command prints before it scores: how many clips, which split, of what; and when they
        are few, that the interval will be wide and which split scores more."""
        skipped = f", {len(self.skipped)} unreadable files in them" if self.skipped else ""
        text = (f"{len(self.targets)} clips of split '{self.split}' ({' + '.join(SPLIT_CHOICES[self.split])}) of "
                f"{', '.join(self.sources)}{skipped}")
        if len(self.targets) >= FEW_CLIPS:
            return text
        text += f". Only {len(self.targets)} clips: the 95% interval will be wide"
        if self.split == "all":
            return text
        return (f"{text}; the folders hold {self.files} files in all, and --split all scores every one (for a folder "
                "no model was trained on: the split by speaker is for training data)")

    def subset(self, indices: list[int]) -> Clips:
        return Clips([self.audio[i] for i in indices], self.targets[indices], [self.paths[i] for i in indices],
                     self.sources, self.split, self.skipped, self.files)


def select_clips(config: Config, sources: list[str | Path], split: str) -> Clips:
    """The one clip selection of every scoring command: the config's classes over the sources (unknown words and
    silence balanced as in training), the clips of `split`. An unreadable or truncated file is skipped, named and
    counted (`load`), never fatal and never padded into a clip."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split '{split}' (choose from {', '.join(SPLIT_CHOICES)})")
    dataset = load(config, sources, splits=SPLIT_CHOICES[split], for_training=False)
    recordings, targets, paths = [], [], []
    for name in SPLIT_CHOICES[split]:
        recordings += dataset.splits[name].audio
        targets += dataset.splits[name].targets
        paths += dataset.splits[name].paths
    if not recordings:
        raise DataError(empty_split_message(config, split, sources))
    files = [clip.path for source in sources for clip in index_source(source, config.split)]
    skipped = dataset.skipped + unreadable_elsewhere(files, dataset.skipped, split)
    return Clips(recordings, np.asarray(targets, np.int64), paths, [str(s) for s in sources], split, skipped,
                 len(files))


def unreadable_elsewhere(files: list[Path], named: list[str], split: str) -> list[str]:
    """The bad files among `files` that `load` did not read (other splits, clips not drawn), checked by header and
    length only, each named on stderr: a bad file of one's folder is named whatever the split, not only with
    --split all. `named`: what load already named (the same message for the same file)."""
    already = set(named)
    found = []
    for path in files:
        try:
            audio.check_audio(path)
        except audio.AudioError as error:
            if str(error) not in already:
                found.append(str(error))
    if found:
        print(f"{len(found)} more unreadable files in the folders, outside what split '{split}' scores:\n  "
              + "\n  ".join(found), file=sys.stderr)
    return found


def _draw_unknown(config: Config, source: Path, clips: list[Clip], split: str, seed: int) -> list[Clip]:
    """`unknown_share` times the source's clips per keyword in `split`, drawn from its non-keyword words."""
    in_split = [clip for clip in clips if clip.split == split]
    per_keyword = sum(clip.word in config.keywords.words for clip in in_split) / max(1, len(config.keywords.words))
    unknown = [clip for clip in in_split if _is_unknown(config, clip.word)]
    count = min(len(unknown), round(config.keywords.unknown_share * per_keyword))
    rng = np.random.default_rng([seed, zlib.crc32(f"{source.name}/{split}".encode())])
    return [unknown[i] for i in sorted(rng.choice(len(unknown), size=count, replace=False))] if count else []


def empty_split_message(config: Config, split: str, sources: list[str | Path]) -> str:
    """Why a split has no clips, for `kws eval` and `kws report`."""
    hint = (" (the config holds out no test speakers, split.test_percent = 0: use --split validation)"
            if split == "test" and config.split.test_percent == 0 else "")
    return f"no clips in split '{split}' of {', '.join(map(str, sources))}{hint}"


def _check_keywords(config: Config, clips: list[Clip], sources: list[str | Path]) -> None:
    words = Counter(clip.word for clip in clips if clip.split == "train")
    missing = [word for word in config.keywords.words if not words[word]]
    if missing:
        found = ", ".join(sorted(w for w in words if not w.startswith("_"))) or "none"
        raise ConfigError(f"keyword '{missing[0]}' of keywords.words has no training clips in "
                          f"{', '.join(map(str, sources))} (words found: {found})")


def class_of(config: Config, word: str) -> int | None:
    """The config's class index for a spoken word, or None when the config has no class for it."""
    if word in config.keywords.words:
        return config.labels.index(word)
    if word in SILENCE_WORDS:
        return config.labels.index("silence") if config.keywords.silence else None
    if config.keywords.unknown and _is_unknown(config, word):
        return config.labels.index("unknown")
    return None


def _is_unknown(config: Config, word: str) -> bool:
    if word in config.keywords.words or word in SILENCE_WORDS or word == NOISE_WORD:
        return False
    return not config.keywords.unknown_words or word in config.keywords.unknown_words


def _add_silence(config: Config, split: Split, in_split: list[Clip], count: int, noise: list[np.ndarray],
                 rng: np.random.Generator, skipped: list[str]) -> None:
    """Silence: the dataset's own silence clips first, then quiet crops of background noise (a tenth digital zero)."""
    silence_index = config.labels.index("silence")
    for clip in [clip for clip in in_split if clip.word in SILENCE_WORDS][:count]:
        recording = audio.read_audio_or_skip(clip.path, config.audio.sample_rate, skipped)
        if recording is None:
            continue
        split.audio.append(audio.fit_length(recording, config.clip_samples))
        split.paths.append(clip.path)
        split.targets.append(silence_index)
        count -= 1
    for i in range(max(0, count)):
        if i % 10 == 0:
            crop = np.zeros(config.clip_samples, np.int16)
        else:
            crop = noise_crop(noise, config.clip_samples, rng)
            crop = audio.float_to_int16(crop * 10 ** (rng.uniform(-50, -15) / 20) / max(rms(crop), 1e-9))
        split.paths.append(Path(f"<silence {i}>"))
        split.targets.append(silence_index)
        split.audio.append(crop)


def load_noise(paths: list[Path], sample_rate: int, skipped: list[str]) -> list[np.ndarray]:
    """Noise recordings as float arrays; a folder contributes every audio file below it."""
    files = []
    for path in paths:
        if path.is_dir():
            files += audio.audio_files(path)
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path}: noise file or folder not found")
    noise = []
    for path in files:
        recording = audio.read_audio_or_skip(path, sample_rate, skipped)
        if recording is not None:
            noise.append(recording.astype(np.float32) / 32768.0)
    return noise
