"""Synthetic speech with espeak-ng: format, layout, determinism and errors."""

from __future__ import annotations

import shutil
import wave

import numpy as np
import pytest

from kws.data.speech_commands import which_set
from kws.data.synth import (
    UNKNOWN_WORDS_EN,
    SynthError,
    list_voices,
    synthesize,
    synthesize_flite,
    unknown_words,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

# Small but real: 2 words x 2 voices x 2 speeds = 8 clips.
SMALL = dict(voices=["en-us", "en-gb"], variants=["f2"], speeds=[150, 190], pitches=[50], progress=False)


@needs_espeak
def test_renders_one_second_16k_mono_int16_clips_in_speech_commands_layout(tmp_path):
    clips = synthesize(["yes", "marvin"], tmp_path, **SMALL)
    assert len(clips) == 8
    assert [clip.path for clip in clips] == sorted(clip.path for clip in clips)
    assert {clip.speaker for clip in clips} == {"espeak-en-us+f2", "espeak-en-gb+f2"}
    for clip in clips:
        assert clip.path.parent == tmp_path / clip.word
        assert clip.path.name.startswith(f"{clip.speaker}_nohash_")
        # The speaker-hash split sees the synthetic speaker, exactly as for real recordings.
        assert which_set(clip.path.name) == which_set(f"{clip.speaker}_nohash_0.wav")
        with wave.open(str(clip.path)) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (
                1,
                2,
                16000,
                16000,
            )
            samples = np.frombuffer(wav.readframes(16000), "<i2")
        assert np.abs(samples).max() > 2000  # speech, not silence
        assert np.abs(samples[:50]).max() < 200 or np.abs(samples[-50:]).max() < 200  # placed inside the clip


@needs_espeak
def test_output_is_deterministic_and_independent_of_workers(tmp_path):
    first = synthesize(["yes", "marvin"], tmp_path / "a", seed=3, workers=2, **SMALL)
    second = synthesize(["yes", "marvin"], tmp_path / "b", seed=3, workers=1, **SMALL)
    other = synthesize(["yes", "marvin"], tmp_path / "c", seed=4, workers=2, **SMALL)
    for a, b in zip(first, second, strict=True):
        assert a.path.relative_to(tmp_path / "a") == b.path.relative_to(tmp_path / "b")
        assert a.path.read_bytes() == b.path.read_bytes()
    assert any(a.path.read_bytes() != c.path.read_bytes() for a, c in zip(first, other, strict=True))


@needs_espeak
def test_existing_files_are_not_rendered_again(tmp_path):
    clips = synthesize(["yes"], tmp_path, **SMALL)
    marker = clips[0].path
    marker.write_bytes(b"kept")
    again = synthesize(["yes"], tmp_path, **SMALL)
    assert again == clips
    assert marker.read_bytes() == b"kept"


@needs_espeak
def test_unknown_voice_or_variant_is_named(tmp_path):
    with pytest.raises(SynthError, match="en-xx-nowhere"):
        synthesize(["yes"], tmp_path, voices=["en-us", "en-xx-nowhere"], progress=False)
    with pytest.raises(SynthError, match="variant zz9"):
        synthesize(["yes"], tmp_path, voices=["en-us"], variants=["zz9"], progress=False)
    assert not any(tmp_path.iterdir())


@needs_espeak
def test_list_voices():
    english = list_voices("en")
    assert {"en-us", "en-gb", "en-gb-scotland"} <= set(english)
    assert "en-uk" not in english  # an MBROLA voice: unusable without mbrola
    assert list_voices("ar") == ["ar"]


def test_missing_espeak_binary_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SynthError, match="apt-get install espeak-ng"):
        synthesize(["yes"], tmp_path / "out", progress=False)
    with pytest.raises(SynthError, match="apt-get install espeak-ng"):
        list_voices("en")


def test_unknown_words_are_the_auxiliary_speech_commands_words_and_more():
    auxiliary = {
        "backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy", "house",
        "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "visual", "wow", "zero",
    }  # fmt: skip
    commands = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"}
    assert set(UNKNOWN_WORDS_EN[:25]) == auxiliary and set(UNKNOWN_WORDS_EN[25:35]) == commands
    assert len(set(UNKNOWN_WORDS_EN)) == len(UNKNOWN_WORDS_EN) >= 35 + 30
    # a config's keywords are never rendered as unknown words (numbers: one, two, four, six are auxiliary words)
    numbers = unknown_words(["one", "two", "four", "six"], 30)
    assert len(numbers) == 30 and not {"one", "two", "four", "six"} & set(numbers) and {"on", "off"} <= set(numbers)
    assert unknown_words(["yes"], 2, ["yes", "cat", "dog"]) == ["cat", "dog"]


needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")


@needs_flite
def test_flite_warps_are_speakers_and_move_the_spectrum(tmp_path):
    clips = synthesize_flite(["yes"], tmp_path, voices=["slt"], warps=[0.88, 1.12], stretches=[1.0], progress=False)
    assert [clip.speaker for clip in clips] == ["flite-slt+vt088", "flite-slt+vt112"]

    def centroid(path):
        with wave.open(str(path)) as wav:
            assert (wav.getframerate(), wav.getnframes()) == (16000, 16000)
            samples = np.frombuffer(wav.readframes(16000), "<i2").astype(float)
        spectrum = np.abs(np.fft.rfft(samples))
        return float(np.sum(spectrum * np.arange(len(spectrum))) / np.sum(spectrum))

    low, high = (centroid(clip.path) for clip in clips)
    assert high / low == pytest.approx(1.12 / 0.88, rel=0.1)  # every frequency scaled by the warp
    with pytest.raises(SynthError, match="unknown flite voice nobody"):
        synthesize_flite(["yes"], tmp_path / "x", voices=["nobody"], progress=False)
