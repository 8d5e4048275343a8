"""Keyword clips cut out of longer transcribed recordings by forced alignment: any speech with word transcripts
(a corpus such as AN4 or LibriSpeech, or one's own recordings) becomes keyword data.

pocketsphinx (CMU Sphinx, BSD licence; its PyPI wheel carries the US English acoustic model and the CMU pronouncing
dictionary) aligns each recording's transcript to its audio, and every token of the chosen words becomes one clip,
`<out>/<word>/<speaker>_<utterance>_<position>.wav`: the folder layout `kws train` reads, the speaker first so that
the split by speaker keeps a speaker's clips together.

A clip holds the word alone, as the Multilingual Spoken Words Corpus cuts its words: the aligned span plus `margin_ms`
either side, faded in and out, centred in the clip over digital silence (training mixes noise over it). In connected
speech the neighbour words touch: 98% of AN4's digit tokens have no pause on either side, so a neighbour is cut off
at the margin rather than the token dropped, unless `min_gap_ms` asks for words spoken apart.

Every token of a chosen word is counted, and kept or rejected for the first of these reasons (`REJECTIONS`):
its recording is missing or unreadable; the recording could not be aligned (a word outside the dictionary, or a
transcript the audio does not match); it is longer than the clip with its margins; its span holds full-scale samples
(clipped audio); the aligner squeezed it into its minimum length, three 10 ms frames per phone (the transcript forced
a word where the audio has too little of it); a neighbour word is closer than `min_gap_ms`; or its acoustic score
per frame is low for its word, more than `score_mads` median absolute deviations below the median of that word's
aligned tokens (the alignment's confidence; a word needs `MIN_TOKENS_FOR_SCORE` tokens for it).
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kws.common.progress import Progress
from kws.data import audio

MIN_FRAMES_PER_PHONE = 3  # the acoustic model's three-state left-to-right phone HMMs
FADE_MS = 10
MIN_TOKENS_FOR_SCORE = 10  # fewer tokens of a word and its median score says too little to judge one by
UNALIGNED = ("recording missing or unreadable", "alignment failed")  # rejections with no alignment to score
REJECTIONS = (*UNALIGNED, "longer than the clip", "clipped audio", "squeezed by the aligner",
              "too close to a neighbour word", "low alignment score")
SPEAKER_RULES = ("folder", "prefix")
_MARKUP = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")  # <s>, </s>, <sil>, [noise], ++breath++: not words
_SPHINX_LINE = re.compile(r"^(?P<text>.*)\((?P<utterance>[^()\s]+)\)\s*$")


class AlignError(ValueError):
    """Input that cannot be aligned at all; the message names the file (and line) and why."""


@dataclass(frozen=True)
class Transcript:
    utterance: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class AlignedWord:
    """A word (or `<sil>`) of the alignment, in the decoder's frames [start, end)."""

    word: str
    start: int
    end: int
    score: float  # log of pocketsphinx's acoustic likelihood over its frames (higher is better)
    phones: int


@dataclass
class Token:
    """One spoken occurrence of a chosen word and what became of it."""

    word: str
    utterance: str
    speaker: str
    position: int  # the word's index in the transcript
    start_s: float = 0.0
    end_s: float = 0.0
    score_per_frame: float = 0.0
    outcome: str = "kept"  # or one of REJECTIONS
    file: str = ""  # the clip written, relative to the output folder


def read_transcripts(path: str | Path) -> list[Transcript]:
    """Transcripts one utterance a line, in either common layout: Sphinx `<s> TEXT </s> (UTTERANCE)` (AN4, CMU) or
    Kaldi/LibriSpeech `UTTERANCE TEXT`. Words are lowercased; markup (`<s>`, `[noise]`, `++breath++`) is dropped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AlignError(f"{path}: cannot be read as a UTF-8 transcript file ({error})") from None
    transcripts, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        sphinx = _SPHINX_LINE.match(line)
        utterance, _, text = (sphinx["utterance"], "", sphinx["text"]) if sphinx else line.strip().partition(" ")
        words = tuple(word.lower() for word in text.split() if not _MARKUP.match(word))
        if not words:
            raise AlignError(f"{path}:{number}: no words for utterance '{utterance}'")
        if utterance in seen:
            raise AlignError(f"{path}:{number}: utterance '{utterance}' is already transcribed on line {seen[utterance]}")
        seen[utterance] = number
        transcripts.append(Transcript(utterance, words))
    if not transcripts:
        raise AlignError(f"{path}: no transcripts in it")
    return transcripts


class Aligner:
    """pocketsphinx's forced alignment of one recording to its words (US English model and dictionary by default)."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise AlignError("pocketsphinx is not installed: `pip install pocketsphinx==5.1.1` (in nano-kws' "
                             "dependencies)") from None
        self._decoder = Decoder(lm=None, loglevel="FATAL")
        # the acoustic model's audio rate (the clips are written at it) and frame rate (alignments count frames)
        self.sample_rate = int(self._decoder.config["samprate"])
        self.frames_per_second = int(self._decoder.config["frate"])

    def known(self, word: str) -> bool:
        return self._decoder.lookup_word(word) is not None

    def align(self, samples: np.ndarray, words: tuple[str, ...]) -> list[AlignedWord] | None:
        """The words' spans in int16 `samples` at `sample_rate`, with the silences found between them; None when the decoder
        finds no path through the words."""
        if not all(self.known(word) for word in words):
            return None
        # One bit of dither: stretches of digital silence (padded or generated audio) otherwise stall the aligner
        # (a final "six" lost to silence in an espeak-ng sentence, measured).
        dithered = samples.astype(np.int32) + np.random.default_rng(0).integers(-1, 2, len(samples))
        decoder = self._decoder
        # The word pass alone: pocketsphinx's second, state-level pass (set_alignment) failed on 14% of AN4's
        # training recordings whose word pass had succeeded (spelled letters), and left the decoder failing after.
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(np.clip(dithered, -32768, 32767).astype(np.int16).tobytes(), full_utt=True)
        try:
            decoder.end_utt()
        except RuntimeError:  # "Failed to stop utterance processing": no final state reached
            return None
        hypothesis = decoder.hyp()
        if hypothesis is None or [_base(word) for word in hypothesis.hypstr.split()] != list(words):
            return None
        aligned = []
        for segment in decoder.seg():
            word = _base(segment.word)
            phones = len(decoder.lookup_word(word).split()) if word in words else 1
            # `ascore` is the acoustic likelihood (linear); its log over the frames is the per-frame score
            score = math.log(segment.ascore) if segment.ascore > 0 else -math.inf
            aligned.append(AlignedWord(word, segment.start_frame, segment.end_frame + 1, score, phones))
        return aligned


def _base(word: str) -> str:
    """A dictionary word without its pronunciation variant: `two(2)` is `two`."""
    return re.sub(r"\(\d+\)$", "", word)


def cut_clip(samples: np.ndarray, start: int, end: int, clip_samples: int, margin: int, fade: int) -> np.ndarray:
    """The span [start - margin, end + margin) of `samples`, faded in and out over `fade` samples, centred in a clip
    of silence."""
    low, high = max(0, start - margin), min(len(samples), end + margin)
    word = samples[low:high].astype(np.float64)
    fade = min(fade, len(word) // 2)
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
    word[:fade] *= ramp
    word[len(word) - fade:] *= ramp[::-1]
    clip = np.zeros(clip_samples, np.int16)
    offset = (clip_samples - len(word)) // 2
    clip[offset:offset + len(word)] = np.round(word).astype(np.int16)
    return clip


def align_recordings(transcripts: str | Path, recordings: str | Path, out: str | Path, *,
                     words: tuple[str, ...] = (), speaker_rule: str = "folder", clip_ms: int = 1000,
                     margin_ms: int = 30, score_mads: float = 4.0, min_gap_ms: int = 0,
                     progress: bool = True) -> dict:
    """Aligns every transcribed recording below `recordings` (found by file name = utterance) and writes the tokens
    of `words` (empty: every word) as clips below `out`, with `alignment.csv` (every token and its outcome) and
    `align_report.json` (per word: found, kept, rejected by reason, speakers). Returns that report.

    The speaker of a recording is its folder's name (`speaker_rule` "folder", AN4's layout) or the utterance name up
    to its first '-' or '_' ("prefix", LibriSpeech's `84-121123-0000`). Memory holds one recording at a time."""
    if speaker_rule not in SPEAKER_RULES:
        raise AlignError(f"unknown speaker rule '{speaker_rule}' (choose from {', '.join(SPEAKER_RULES)})")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise AlignError(f"{out}: the output folder is not empty (choose a new one: nothing is overwritten)")
    listed = read_transcripts(transcripts)
    files = _recordings_by_name(Path(recordings))
    chosen = set(words) or {word for transcript in listed for word in transcript.words}
    bad = sorted(word for word in chosen if "/" in word or word.startswith((".", "-")))
    if bad:
        raise AlignError(f"{transcripts}: '{bad[0]}' cannot be a folder name for its clips")
    aligner = Aligner()
    cut = _Cut(out, aligner.sample_rate, clip_ms, margin_ms, min_gap_ms)
    tokens: list[Token] = []
    unreadable: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    with Progress(len(listed), "aligning", unit="recordings", enabled=progress) as shown:
        for transcript in listed:
            tokens += _align_one(aligner, transcript, files.get(transcript.utterance), chosen, speaker_rule, cut,
                                 unreadable)
            shown.update()
    # The scores of all a word's tokens judge each one: its clip was written in the one pass over the recordings,
    # and is taken back here when its score is low.
    for token in _reject_low_scores(tokens, score_mads):
        (out / token.file).unlink()
        token.file = ""
    report = _report(tokens, unreadable, {"transcripts": str(transcripts), "recordings": str(recordings),
                                          "clip_ms": clip_ms, "margin_ms": margin_ms, "score_mads": score_mads,
                                          "min_gap_ms": min_gap_ms, "speaker_rule": speaker_rule})
    with (out / "alignment.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(tokens[0])) if tokens else ["word"])
        writer.writeheader()
        writer.writerows(asdict(token) for token in tokens)
    (out / "align_report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def format_report(report: dict) -> str:
    """The per-word table `kws data align` prints."""
    lines = [f"{'word':<12} {'found':>6} {'kept':>6} {'speakers':>8}  rejected"]
    for word, counts in report["words"].items():
        rejected = ", ".join(f"{reason} {n}" for reason, n in counts["rejected"].items()) or "-"
        lines.append(f"{word:<12} {counts['found']:>6} {counts['kept']:>6} {counts['speakers']:>8}  {rejected}")
    for problem in report["unreadable"]:
        lines.append(f"unreadable: {problem}")
    return "\n".join(lines)


def _recordings_by_name(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise AlignError(f"{folder}: not a folder of recordings")
    files: dict[str, Path] = {}
    for path in audio.audio_files(folder):
        first = files.setdefault(path.stem, path)
        if first == path:
            continue
        if first.parent != path.parent:
            raise AlignError(f"{path}: a second recording named '{path.stem}' (the first: {first})")
        # One recording in two formats side by side (AN4 has WAV copies of some SPHERE files): WAV is read by the
        # standard library, which names a truncated file.
        files[path.stem] = min(first, path, key=lambda candidate: candidate.suffix.lower() != ".wav")
    return files


def _speaker(path: Path, utterance: str, rule: str) -> str:
    name = path.parent.name if rule == "folder" else re.split(r"[-_]", utterance, maxsplit=1)[0]
    return name.replace("_", "-")  # '_' ends the speaker in a clip's name


@dataclass(frozen=True)
class _Cut:
    """Where and how tokens become clips."""

    out: Path
    sample_rate: int
    clip_ms: int
    margin_ms: int
    min_gap_ms: int

    def samples(self, ms: int) -> int:
        return self.sample_rate * ms // 1000


def _align_one(aligner: Aligner, transcript: Transcript, path: Path | None, chosen: set[str], speaker_rule: str,
               cut: _Cut, unreadable: list[str]) -> list[Token]:
    """The tokens of one recording, judged by everything but their word's score distribution; the clips of those
    kept so far are written."""
    speaker = _speaker(path or Path(transcript.utterance), transcript.utterance, speaker_rule)
    tokens = [Token(word, transcript.utterance, speaker, position)
              for position, word in enumerate(transcript.words) if word in chosen]
    if not tokens:
        return []
    if path is None:
        unreadable.append(f"{transcript.utterance}: no recording of that name")
        return _rejected(tokens, "recording missing or unreadable")
    samples = audio.read_audio_or_skip(path, cut.sample_rate, unreadable)
    if samples is None:
        return _rejected(tokens, "recording missing or unreadable")
    aligned = aligner.align(samples, transcript.words)
    if aligned is None:
        return _rejected(tokens, "alignment failed")
    spoken = [entry for entry in aligned if entry.word in transcript.words]
    if [entry.word for entry in spoken] != list(transcript.words):
        return _rejected(tokens, "alignment failed")
    step = cut.sample_rate // aligner.frames_per_second
    clip_samples, margin = cut.samples(cut.clip_ms), cut.samples(cut.margin_ms)
    for token in tokens:
        entry = spoken[token.position]
        start, end = entry.start * step, entry.end * step
        token.start_s, token.end_s = start / cut.sample_rate, end / cut.sample_rate
        token.score_per_frame = round(entry.score / max(1, entry.end - entry.start), 3)
        gaps = [entry.start - spoken[token.position - 1].end if token.position else None,
                spoken[token.position + 1].start - entry.end if token.position + 1 < len(spoken) else None]
        if end - start + 2 * margin > clip_samples:
            token.outcome = "longer than the clip"
        elif np.max(np.abs(samples[start:end].astype(np.int32))) >= 32767:
            token.outcome = "clipped audio"
        elif entry.end - entry.start <= MIN_FRAMES_PER_PHONE * entry.phones:
            token.outcome = "squeezed by the aligner"
        elif any(gap is not None and gap * 1000 // aligner.frames_per_second < cut.min_gap_ms for gap in gaps):
            token.outcome = "too close to a neighbour word"
        else:
            token.file = f"{token.word}/{speaker}_{transcript.utterance.replace('_', '-')}_{token.position}.wav"
            (cut.out / token.word).mkdir(exist_ok=True)
            clip = cut_clip(samples, start, end, clip_samples, margin, cut.samples(FADE_MS))
            audio.write_wav(cut.out / token.file, clip, cut.sample_rate)
    return tokens


def _rejected(tokens: list[Token], reason: str) -> list[Token]:
    for token in tokens:
        token.outcome = reason
    return tokens


def _reject_low_scores(tokens: list[Token], score_mads: float) -> list[Token]:
    """Marks the kept tokens whose score per frame is low for their word, and returns them."""
    aligned = defaultdict(list)
    for token in tokens:
        if token.outcome not in UNALIGNED:
            aligned[token.word].append(token)
    rejected = []
    for word_tokens in aligned.values():
        if len(word_tokens) < MIN_TOKENS_FOR_SCORE:
            continue
        scores = np.array([token.score_per_frame for token in word_tokens])
        median = np.median(scores)
        floor = median - score_mads * 1.4826 * np.median(np.abs(scores - median))  # 1.4826 MAD: one sigma
        for token in word_tokens:
            if token.outcome == "kept" and token.score_per_frame < floor:
                token.outcome = "low alignment score"
                rejected.append(token)
    return rejected


def _report(tokens: list[Token], unreadable: list[str], settings: dict) -> dict:
    by_word: dict[str, list[Token]] = defaultdict(list)
    for token in tokens:
        by_word[token.word].append(token)
    words = {}
    for word, of_word in sorted(by_word.items()):
        rejected = Counter(token.outcome for token in of_word if token.outcome != "kept")
        words[word] = {"found": len(of_word), "kept": len(of_word) - sum(rejected.values()),
                       "rejected": {reason: rejected[reason] for reason in REJECTIONS if rejected[reason]},
                       "speakers": len({token.speaker for token in of_word if token.outcome == "kept"})}
    if unreadable:
        print(f"{len(unreadable)} recordings missing or unreadable:\n  " + "\n  ".join(unreadable), file=sys.stderr)
    return {"settings": settings, "words": words, "unreadable": unreadable}
