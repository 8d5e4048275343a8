"""`kws data align`: forced alignment of espeak-ng sentences whose word positions are known (each word rendered
alone, joined with pauses of known length), the clips it writes, and every reason a token is rejected."""

import csv
import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from kws.cli import main
from kws.data import align, audio
from kws.data.dataset import index_source

RATE = 16000
PAUSE = 0.25  # seconds between words


def _word(word: str, voice: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", word], capture_output=True, check=True).stdout
    samples, rate = _read_bytes(wav)
    samples = audio.resample(samples, rate, RATE)
    loud = np.nonzero(np.abs(samples) > 0.02 * np.abs(samples).max())[0]
    return samples[loud[0]:loud[-1] + 1]


def _read_bytes(wav: bytes) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
    return samples, rate


def sentence(words: list[str], voice: str = "en-us", gain: float = 0.5) -> tuple[np.ndarray, list[tuple]]:
    """A recording of `words` with PAUSE between them and around them, and each word's true (start, end) in s."""
    pause = np.zeros(int(PAUSE * RATE))
    parts, truth, position = [pause], [], len(pause)
    for word in words:
        samples = _word(word, voice) * gain
        truth.append((word, position / RATE, (position + len(samples)) / RATE))
        parts += [samples, pause]
        position += len(samples) + len(pause)
    noise = np.random.default_rng(0).normal(0, 0.001, position)  # a quiet room, not digital silence
    return audio.float_to_int16(np.concatenate(parts) + noise), truth


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two speakers' folders (AN4's layout: the folder is the speaker) and a Sphinx transcript file."""
    root = tmp_path_factory.mktemp("corpus")
    truths = {}
    for speaker, voice, utterance, words in [("alice", "en-us", "u1-alice", ["one", "two", "four", "six"]),
                                             ("bob", "en-gb", "u2-bob", ["six", "go", "one"])]:
        samples, truths[utterance] = sentence(words, voice)
        (root / "wav" / speaker).mkdir(parents=True)
        audio.write_wav(root / "wav" / speaker / f"{utterance}.wav", samples, RATE)
    (root / "train.transcription").write_text("<s> ONE TWO FOUR SIX </s> (u1-alice)\n<s> SIX GO ONE </s> (u2-bob)\n")
    return root, truths


def test_words_are_found_where_they_were_spoken_and_cut_into_clips(corpus, tmp_path):
    root, truths = corpus
    out = tmp_path / "out"
    report = align.align_recordings(root / "train.transcription", root / "wav", out, words=("one", "two", "six"),
                                    progress=False)
    assert report["words"] == {
        "one": {"found": 2, "kept": 2, "rejected": {}, "speakers": 2},
        "six": {"found": 2, "kept": 2, "rejected": {}, "speakers": 2},
        "two": {"found": 1, "kept": 1, "rejected": {}, "speakers": 1}}
    rows = list(csv.DictReader((out / "alignment.csv").open()))
    for row in rows:
        word, start, end = truths[row["utterance"]][int(row["position"])]
        assert row["word"] == word
        assert abs(float(row["start_s"]) - start) < 0.08 and abs(float(row["end_s"]) - end) < 0.08, row
    assert sorted(path.relative_to(out).as_posix() for path in out.glob("*/*.wav")) == [
        "one/alice_u1-alice_0.wav", "one/bob_u2-bob_2.wav", "six/alice_u1-alice_3.wav", "six/bob_u2-bob_0.wav",
        "two/alice_u1-alice_1.wav"]
    clip, rate = audio.read_pcm(out / "two" / "alice_u1-alice_1.wav")
    assert rate == RATE and len(clip) == RATE
    energy = np.abs(clip)
    centre = np.sum(energy * np.arange(len(clip))) / np.sum(energy) / RATE
    assert abs(centre - 0.5) < 0.1  # the word sits in the middle
    assert np.all(clip[:2000] == 0) and np.all(clip[-2000:] == 0)  # and only the word (with its margin) is in it
    # kws train reads the folder, each clip's speaker from its name
    assert {(clip.word, clip.speaker) for clip in index_source(out)} == {
        ("one", "alice"), ("one", "bob"), ("six", "alice"), ("six", "bob"), ("two", "alice")}
    assert json.loads((out / "align_report.json").read_text())["words"] == report["words"]


def test_every_rejection_is_counted_by_its_reason(corpus, tmp_path):
    root = shutil.copytree(corpus[0], tmp_path / "corpus")
    loud, _ = sentence(["two", "six"], gain=2.5)  # peaks beyond full scale
    audio.write_wav(root / "wav" / "alice" / "u3-alice.wav", loud, RATE)
    (root / "wav" / "alice" / "u4-alice.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")  # cut inside its header
    transcripts = tmp_path / "more.txt"  # Kaldi layout: UTTERANCE WORDS
    transcripts.write_text("u1-alice one two four six\nu2-bob six go qwzxv\nu3-alice two six\nu4-alice six\n"
                           "u5-alice two\n")
    report = align.align_recordings(transcripts, root / "wav", tmp_path / "out", words=("two", "six"),
                                    progress=False)
    assert report["words"]["six"]["rejected"] == {"recording missing or unreadable": 1, "alignment failed": 1,
                                                  "clipped audio": 1}
    assert report["words"]["two"]["rejected"] == {"recording missing or unreadable": 1, "clipped audio": 1}
    assert report["words"]["two"]["kept"] == report["words"]["six"]["kept"] == 1
    assert any("u4-alice.wav" in problem for problem in report["unreadable"])
    assert "u5-alice: no recording of that name" in report["unreadable"]

    close = align.align_recordings(root / "train.transcription", root / "wav", tmp_path / "close", words=("two",),
                                   min_gap_ms=400, progress=False)  # the pauses are 250 ms
    assert close["words"]["two"]["rejected"] == {"too close to a neighbour word": 1}
    short = align.align_recordings(root / "train.transcription", root / "wav", tmp_path / "short", words=("two",),
                                   clip_ms=200, progress=False)
    assert short["words"]["two"]["rejected"] == {"longer than the clip": 1}


def test_low_scores_are_outliers_of_their_word():
    tokens = [align.Token("two", f"u{i}", "s", 0, score_per_frame=-10.0 - 0.1 * (i % 3)) for i in range(12)]
    tokens[5].score_per_frame = -30.0
    align._reject_low_scores(tokens, score_mads=4.0)
    assert [token.outcome for token in tokens].count("low alignment score") == 1 and tokens[5].outcome != "kept"
    few = tokens[:5] + [align.Token("two", "x", "s", 0, score_per_frame=-99.0)]
    for token in few:
        token.outcome = "kept"
    align._reject_low_scores(few, score_mads=4.0)  # too few tokens to judge by
    assert all(token.outcome == "kept" for token in few)


def test_bad_input_is_named(corpus, tmp_path, capsys):
    root, _ = corpus
    bad = tmp_path / "bad.txt"
    bad.write_text("u1-alice one\n<s> </s> (u9)\n")
    with pytest.raises(align.AlignError, match=r"bad.txt:2: no words for utterance 'u9'"):
        align.read_transcripts(bad)
    bad.write_text("u1-alice one\nu1-alice two\n")
    with pytest.raises(align.AlignError, match=r"bad.txt:2: utterance 'u1-alice' is already transcribed on line 1"):
        align.read_transcripts(bad)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert main(["data", "align", "--transcripts", str(root / "train.transcription"), "--recordings",
                 str(root / "wav"), "--out", str(occupied)]) == 2
    assert "the output folder is not empty" in capsys.readouterr().err
    assert (occupied / "keep.txt").read_text() == "mine"
