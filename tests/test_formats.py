"""The formats datasets come in (Common Voice's MP3, MSWC's Opus, FLAC): a folder of them trains and evaluates like
the same folder in WAV, and a bad one is named and skipped like a bad WAV."""

import numpy as np
import pytest
import soundfile

from kws.config import from_dict
from kws.data import audio
from kws.data import dataset as data
from kws.evaluation.evaluate import ModelDir, evaluate
from kws.frontends.dispatch import raw_batch

CONFIG = {"keywords": {"words": ["yes", "no"]}}


def _convert(wav_root, out, suffix, **write):
    """A copy of a <word>/<clip>.wav folder in another format (same names but the suffix; the folder's name too,
    which seeds the draw of unknown-word clips)."""
    out = out / wav_root.name
    for path in audio.audio_files(wav_root):
        target = out / path.relative_to(wav_root).with_suffix(suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        samples, rate = audio.read_pcm(path)
        soundfile.write(target, samples, rate, **write)
    return out


@pytest.fixture(scope="module")
def flac_data(synth_data, tmp_path_factory):
    return _convert(synth_data, tmp_path_factory.mktemp("flac"), ".flac", subtype="PCM_16")


@pytest.fixture(scope="module")
def mp3_data(synth_data, tmp_path_factory):
    return _convert(synth_data, tmp_path_factory.mktemp("mp3"), ".mp3")


def _clips(root):
    return [(clip.path.relative_to(root).with_suffix(""), clip.word, clip.speaker, clip.split)
            for clip in data.index_source(root)]


def _by_name(split):
    return {path.with_suffix("").name + path.parent.name: clip for path, clip in zip(split.paths, split.audio,
                                                                                      strict=True)}


def test_flac_and_mp3_folders_index_and_load_like_wav(synth_data, flac_data, mp3_data):
    assert _clips(flac_data) == _clips(synth_data) == _clips(mp3_data)
    assert {path.suffix for path in audio.audio_files(mp3_data)} == {".mp3"}
    config = from_dict(CONFIG)
    wav, flac, mp3 = (data.load(config, [root]) for root in (synth_data, flac_data, mp3_data))
    for name, split in wav.splits.items():
        expected = _by_name(split)
        assert expected.keys() == _by_name(flac.splits[name]).keys() == _by_name(mp3.splits[name]).keys()
        for key, clip in _by_name(flac.splits[name]).items():
            assert np.array_equal(clip, expected[key]), key  # lossless
        for key, clip in _by_name(mp3.splits[name]).items():
            if key.startswith("<silence"):
                continue  # generated, from the noise
            reference = expected[key].astype(np.float64)
            error = clip.astype(np.float64) - reference
            assert len(clip) == len(reference)
            assert np.sqrt(np.mean(error ** 2)) < 0.1 * np.sqrt(np.mean(reference ** 2)) + 50, key  # lossy, aligned
    assert wav.skipped == flac.skipped == mp3.skipped == []
    words = flac_data / "yes"
    assert len(data.load_noise([words], 16000, [])) == len(data.load_noise([synth_data / "yes"], 16000, []))


def test_flac_and_mp3_folders_evaluate_like_wav(tiny_model, synth_data, flac_data, mp3_data):
    model_dir = ModelDir(tiny_model)
    results = {}
    for name, root in (("wav", synth_data), ("flac", flac_data), ("mp3", mp3_data)):
        clips = data.select_clips(model_dir.config, [root], "all")
        raw = raw_batch(model_dir.config, clips.audio, len(clips.audio), "features")
        results[name] = evaluate(model_dir, raw, clips.targets)["int8"]
    assert results["flac"] == results["wav"]
    assert results["mp3"]["clips"] == results["wav"]["clips"]
    assert abs(results["mp3"]["accuracy"] - results["wav"]["accuracy"]) <= 0.1


def test_a_bad_flac_is_named_and_skipped(flac_data, tmp_path):
    root = tmp_path / "set"
    for path in audio.audio_files(flac_data, "*/*"):
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        (root / path.parent.name / path.name).write_bytes(path.read_bytes())
    cut, header_only, garbage = sorted((root / "yes").iterdir())[:3]
    cut.write_bytes(cut.read_bytes()[:len(cut.read_bytes()) // 2])
    header_only.write_bytes(header_only.read_bytes()[:30])
    garbage.write_bytes(b"fLaC garbage")
    dataset = data.load(from_dict(CONFIG), [root])
    assert len(dataset.skipped) == 3, dataset.skipped
    for path in (cut, header_only, garbage):
        [message] = [s for s in dataset.skipped if s.startswith(f"{path}: ")]
        assert "not a readable FLAC file (" in message or "truncated data (the header promises" in message, message
        assert not message.endswith("()")
        assert path not in [p for split in dataset.splits.values() for p in split.paths]
    for path in (header_only, garbage):  # a broken header is found without decoding
        with pytest.raises(audio.AudioError) as checking:
            audio.check_audio(path)
        assert str(checking.value) in dataset.skipped


def test_fewer_frames_than_the_header_promises_is_truncated(tmp_path):
    path = tmp_path / "cut.mp3"
    soundfile.write(path, np.sin(np.arange(16000) * 0.05) * 0.3, 16000)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(audio.AudioError, match=r"cut.mp3: truncated data \(the header promises 16000 frames, the "
                                               r"file holds \d+\)"):
        audio.read_pcm(path)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(audio.AudioError, match=r"cut.mp3: not a readable MP3 file \(no audio frame found in it\)"):
        audio.check_audio(path)
    with pytest.raises(audio.AudioError, match="missing.flac: cannot be read"):
        audio.read_audio(tmp_path / "missing.flac", 16000)


def test_a_speech_commands_copy_in_flac_keeps_the_official_split_lists(tmp_path):
    from kws.data import speech_commands

    root = tmp_path / "speech_commands_flac"
    for name in ("aaaa1111_nohash_0", "bbbb2222_nohash_0"):
        (root / "yes").mkdir(parents=True, exist_ok=True)
        soundfile.write(root / "yes" / f"{name}.flac", np.zeros(1600, np.int16), 16000)
    (root / "validation_list.txt").write_text("yes/aaaa1111_nohash_0.wav\n")  # the lists name the .wav originals
    (root / "testing_list.txt").write_text("yes/bbbb2222_nohash_0.wav\n")
    assert [(clip.path.name, clip.split) for clip in speech_commands.index(root)] == [
        ("aaaa1111_nohash_0.flac", "validation"), ("bbbb2222_nohash_0.flac", "test")]
