"""Cached features of a data set: the front end's raw integers of every split, the training split with its
augmented copies (and a teacher's soft targets), computed once per config and data and kept in an .npz cache.
Entry point: `features` (what `kws data features`, `kws train` and `kws export` read); `Features` holds them."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.config import Config
from kws.data.augment import augment
from kws.data.clips import SPLITS
from kws.data.dataset import load
from kws.frontends import dispatch as frontends

UNLABELED = "unlabeled"  # the Features split of the --unlabeled speech (targets -1), trained on beside "train"


@dataclass
class Features:
    """Raw front-end features (the board's integers, exact) with class targets, per split.

    The train split holds the clips first, then `train_copies` augmented versions of them in the same order; so does
    the `unlabeled` split when there is one. With a teacher, `soft` holds its soft targets (at its temperature) of
    every example of those two splits, row for row.
    """

    config: Config
    raw: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    summary: dict
    train_copies: int
    soft: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    def clips(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw features and targets of the split's own clips, without augmented copies (for evaluation)."""
        count = len(self.raw[split]) // (1 + self.train_copies) if split == "train" else len(self.raw[split])
        return self.raw[split][:count], self.targets[split][:count]

    def float(self, split: str) -> np.ndarray:
        """The float model input, shape (n, slices, channels, 1)."""
        return frontends.to_float(self.config, self.raw[split])[..., np.newaxis]


def cache_key(config: Config, sources: list[str | Path], noise: list[str | Path],
              train_only: list[str | Path] = (), unlabeled: list[str | Path] = ()) -> str:
    """What the features depend on: the data-related config sections, the seed, which sources are training-only
    or unlabeled, and every file's size and time."""
    files = []
    for source in [*sources, *noise, *(config.resolve(p) for p in config.augment.noise), *train_only, *unlabeled]:
        source = Path(source)
        for path in sorted(source.rglob("*")) if source.is_dir() else [source]:
            if path.is_file():
                stat = path.stat()
                files.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    parts = [config.digest("keywords", "split", "audio", "frontend", "augment"), config.training.seed, files,
             [str(Path(source).resolve()) for source in train_only]]
    if config.frontend.kind != "microfrontend":  # (only then: caches of the microfrontend stay valid)
        parts.append(frontends.implementation(config))
    if unlabeled:  # (only then: the keys of caches made before unlabeled speech existed stay valid)
        # "train speakers": unlabeled speech of validation/test speakers is held back (caches from before kept it)
        parts.append([str(Path(source).resolve()) for source in unlabeled] + ["train speakers"])
    parts.append("keyword speakers")  # the cached data summary counts each keyword's speakers (older ones do not)
    payload = json.dumps(parts)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def features(config: Config, sources: list[str | Path], noise: list[str | Path] = (),
             cache_dir: Path | None = None, train_only: list[str | Path] = (), unlabeled: list[str | Path] = (),
             teacher: object | None = None) -> Features:
    """Features of every split, the training split with `augment.copies` augmented versions of each clip.

    The augmented copies are drawn once with the config's seed and cached, so every model trained on the same config
    and data sees exactly the same examples. With a `teacher` (kws.training.teacher.Teacher), its soft targets of exactly the
    audio behind each training example (each augmented copy after shift, reverb, gain and noise) are computed with
    the features and cached beside them, keyed like them plus the teacher's md5, labels and temperature; a cache made
    without the teacher gets them by drawing the same copies again (the draw is seeded), so no epoch runs the teacher.
    `unlabeled` speech becomes the `unlabeled` split (with as many copies), which only the teacher labels.
    """
    key = cache_key(config, sources, noise, train_only, unlabeled)
    cache_file = Path(cache_dir) / f"features-{key}.npz" if cache_dir is not None else None
    soft_file = None
    if cache_dir is not None and teacher is not None:
        soft_file = Path(cache_dir) / f"soft-{key}-{teacher_key(config, teacher)}.npz"
    cached = None
    if cache_file is not None and cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as stored:
            summary = json.loads(str(stored["summary"]))
            names = [*SPLITS, *([UNLABELED] if f"raw_{UNLABELED}" in stored else [])]
            cached = Features(config, {s: stored[f"raw_{s}"] for s in names},
                              {s: stored[f"targets_{s}"] for s in names}, summary, config.augment.copies)
        if teacher is None:
            return cached
        if soft_file is not None and soft_file.exists():
            with np.load(soft_file, allow_pickle=False) as stored:
                cached.soft = {name: stored[name] for name in stored.files}
            return cached
    dataset = load(config, sources, noise, train_only=train_only, unlabeled=unlabeled)
    extractor = frontends.clip_features(config)
    rng = np.random.default_rng(config.training.seed + 1)
    raw, targets, soft = {}, {}, {}
    # the unlabeled split draws its copies after every other split, so the others' copies do not depend on it
    named = [*dataset.splits.items(), *([(UNLABELED, dataset.unlabeled)] if unlabeled else [])]
    for name, split in named:
        copies = 1 + (config.augment.copies if name in ("train", UNLABELED) else 0)
        augmented = (augment(config, clip, dataset.noise, rng) for _ in range(1, copies) for clip in split.audio)
        examples = itertools.chain(split.audio, augmented)
        labelled = teacher is not None and name in ("train", UNLABELED)
        raw[name], soft_targets = _extract(extractor, teacher if labelled else None, examples,
                                           copies * len(split.audio), cached is None, f"features {name}")
        if labelled:
            soft[name] = soft_targets
        targets[name] = np.tile(np.asarray(split.targets, np.int32), copies)
    summary = dataset.summary()
    if cached is None and cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(".part.npz")
        np.savez(partial, summary=json.dumps(summary), **{f"raw_{s}": raw[s] for s in raw},
                 **{f"targets_{s}": targets[s] for s in targets})
        partial.replace(cache_file)
    if soft_file is not None:
        partial = soft_file.with_suffix(".part.npz")
        np.savez(partial, **soft)
        partial.replace(soft_file)
    if cached is not None:
        cached.soft = soft
        return cached
    return Features(config, raw, targets, summary, config.augment.copies, soft)


def teacher_key(config: Config, teacher: object) -> str:
    """The part of a soft-target cache name that names the teacher: its md5, temperature, front end and labels."""
    settings = config.teacher
    mapping = hashlib.sha256(json.dumps([settings.frontend, settings.labels, config.labels]).encode()).hexdigest()[:8]
    return f"{teacher.md5[:12]}-T{settings.temperature:g}-{mapping}"


def _extract(extractor: object, teacher: object | None, examples: Iterable[np.ndarray], count: int,
             with_features: bool, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw features (when `with_features`) and the teacher's soft targets (with a teacher) of a stream of
    examples, a teacher batch at a time: memory holds one batch of audio, never the split's."""
    from kws.common.progress import Progress
    from kws.training.teacher import batched

    config = extractor.config
    raw = np.zeros((count if with_features else 0, config.num_slices, config.frontend.channels),
                   frontends.raw_dtype(config))
    soft = np.zeros((count, len(config.labels)), np.float32) if teacher is not None else None
    done = 0
    what = " + teacher" if teacher is not None and with_features else " (teacher)" if teacher is not None else ""
    with Progress(count, label + what, unit="clips") as progress:
        for batch in batched(examples, teacher.batch_size if teacher is not None else 256):
            if with_features:
                raw[done:done + len(batch)] = frontends.raw_many(extractor, batch)
            if soft is not None:
                soft[done:done + len(batch)] = teacher.soft_targets(batch)
            done += len(batch)
            progress.update(len(batch))
    return raw, soft
