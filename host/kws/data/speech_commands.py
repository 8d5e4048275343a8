"""Google Speech Commands (Warden 2018, arXiv:1804.03209): download, and index into `Clip`s.

Two layouts exist:
- the training archives: `<word>/<speaker>_nohash_<n>.wav`, `_background_noise_/*.wav`, and the official
  `validation_list.txt` / `testing_list.txt`;
- the test-set archives: a folder per keyword, `_unknown_/<word>_<speaker>_nohash_<n>.wav` and numbered
  `_silence_/<n>.wav` clips, without split lists.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kws.data.audio import audio_files
from kws.data.clips import Clip
from kws.data.download import download, extract_tar

BACKGROUND_NOISE = "_background_noise_"
SILENCE = "_silence_"
UNKNOWN = "_unknown_"

# From TensorFlow's speech_commands/input_data.py: the hash is reduced modulo this + 1 so that a speaker's split
# stays the same when files are added to the data set.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1

_BASE_URL = "http://download.tensorflow.org/data/"


@dataclass(frozen=True)
class Archive:
    """One official archive: where it is, its SHA-256 and its size in bytes."""

    url: str
    sha256: str | None
    size: int | None


# Checksums and sizes as recorded by TensorFlow Datasets (url_checksums/speech_commands.txt, v0.02 archives),
# Hugging Face datasets (superb/dataset_infos.json, v0.01 archives) and torchaudio (both training archives).
ARCHIVES: dict[str, Archive] = {
    "speech_commands_v0.01": Archive(
        _BASE_URL + "speech_commands_v0.01.tar.gz",
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        1_489_096_277,
    ),
    "speech_commands_test_set_v0.01": Archive(
        _BASE_URL + "speech_commands_test_set_v0.01.tar.gz",
        "baa084f6b62c91de660ff0588ae4dfc4e4d534aa99ac0e5f406cba75836cbd00",
        71_271_436,
    ),
    "speech_commands_v0.02": Archive(
        _BASE_URL + "speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        2_428_923_189,
    ),
    "speech_commands_test_set_v0.02": Archive(
        _BASE_URL + "speech_commands_test_set_v0.02.tar.gz",
        "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
        112_563_277,
    ),
}

VERSIONS = ("v0.01", "v0.02")


def archive_name(version: str, test_set: bool = False) -> str:
    """The `ARCHIVES` key of a version ("v0.02" or "0.02"), training or test-set archive."""
    normalized = version if version.startswith("v") else f"v{version}"
    if normalized not in VERSIONS:
        raise ValueError(f"unknown Speech Commands version {version!r}; known: {', '.join(VERSIONS)}")
    return f"speech_commands_{'test_set_' if test_set else ''}{normalized}"


def fetch(
    version: str, root: Path, progress: bool = True, *, test_set: bool = False, keep_archive: bool = False
) -> Path:
    """Downloads and extracts one official archive into `root/<archive name>/` and returns that directory.

    Does nothing when the directory is already there (extraction renames it into place only when complete).
    The archive is verified against its SHA-256 and deleted after extraction unless `keep_archive`.
    """
    name = archive_name(version, test_set)
    root = Path(root)
    target = root / name
    if target.is_dir():
        return target
    archive = ARCHIVES[name]
    path = download(archive.url, root / f"{name}.tar.gz", archive.sha256, progress)
    extract_tar(path, target, progress)
    if not keep_archive:
        path.unlink()
    return target


def which_set(filename: str, validation_percentage: float = 10, testing_percentage: float = 10) -> str:
    """The official split of a file: "train", "validation" or "test", from a hash of its speaker.

    The speaker is the file name up to `_nohash_`, so all clips of a speaker land in the same split, and a
    speaker keeps its split as the data set grows (TensorFlow's input_data.which_set, with shorter names).
    """
    return _split_of_speaker(_speaker_of(Path(filename).name), validation_percentage, testing_percentage)


def index(root: Path, *, validation_percentage: float = 10, testing_percentage: float = 10) -> list[Clip]:
    """All clips under `root` (either layout), sorted by path.

    Training layout: splits come from `validation_list.txt` / `testing_list.txt` when present, else from
    `which_set`. Test-set layout (has `_unknown_` or `_silence_`): an `_unknown_` clip's word is the one in
    its file name, a silence clip has word `_silence_` and its file stem as speaker; splits come from
    `which_set`. Background-noise files are word `_background_noise_`, split "train".
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    percentages = (validation_percentage, testing_percentage)
    test_layout = (root / UNKNOWN).is_dir() or (root / SILENCE).is_dir()
    listed = None if test_layout else _split_lists(root)
    clips = []
    for path in audio_files(root, "*/*"):
        folder = path.parent.name
        if folder == BACKGROUND_NOISE:
            clips.append(Clip(path, BACKGROUND_NOISE, path.stem, "train"))
            continue
        if folder == SILENCE:
            speaker, word = path.stem, SILENCE
        elif folder == UNKNOWN:
            word, _, rest = path.name.partition("_")
            speaker = _speaker_of(rest)
        else:
            word, speaker = folder, _speaker_of(path.name)
        relative = f"{folder}/{path.name}"
        if listed is not None:
            # (the lists name .wav files; a copy converted to FLAC or MP3 keeps their stems)
            split = listed.get(relative, listed.get(f"{folder}/{path.stem}.wav", "train"))
        else:
            split = _split_of_speaker(speaker, *percentages)
        clips.append(Clip(path, word, speaker, split))
    return clips


def _split_lists(root: Path) -> dict[str, str] | None:
    """Maps `<word>/<file>` to its split from the official lists; None when neither list is there."""
    lists = [(root / "validation_list.txt", "validation"), (root / "testing_list.txt", "test")]
    if not any(path.is_file() for path, _ in lists):
        return None
    splits = {}
    for path, split in lists:
        if path.is_file():
            for line in path.read_text().splitlines():
                entry = line.strip().removeprefix("./")
                if entry:
                    splits[entry] = split
    return splits


def _speaker_of(filename: str) -> str:
    # Everything after `_nohash_` distinguishes takes of one speaker (the official rule).
    return re.sub(r"_nohash_.*$", "", filename)


def _split_of_speaker(speaker: str, validation_percentage: float, testing_percentage: float) -> str:
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"
