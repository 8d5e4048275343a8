"""Data sources: splits, class mapping, bad files and augmentation."""

import re
import wave

import numpy as np
import pytest

from kws.config import ConfigError, from_dict
from kws.data import audio, augment
from kws.data import dataset as data


def _write(path, samples, rate=16000, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, "<i2").tobytes())


def _tone(seconds=1.0, rate=16000, hz=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@pytest.fixture
def folder_dataset(tmp_path):
    root = tmp_path / "set"
    for word, hz in (("alpha", 300), ("beta", 600), ("other", 900)):
        for speaker in range(40):
            _write(root / word / f"spk{speaker:02d}_nohash_0.wav", _tone(hz=hz + speaker))
    return root


def test_folder_split_is_deterministic_and_speaker_disjoint(folder_dataset):
    first = data.index_source(folder_dataset)
    assert first == data.index_source(folder_dataset)
    splits_of = {}
    for clip in first:
        splits_of.setdefault(clip.speaker, set()).add(clip.split)
    assert all(len(splits) == 1 for splits in splits_of.values())
    assert {s for splits in splits_of.values() for s in splits} == {"train", "validation", "test"}


def test_csv_split(tmp_path):
    root = tmp_path / "csvset"
    for name in ("a1_NO_1", "a2_NO_1"):
        _write(root / "yes" / f"{name}.wav", _tone())
    (root / "train.csv").write_text("file,class\nyes/a1_NO_1.wav,yes\n")
    (root / "val.csv").write_text("file,class\nyes/a2_NO_1.wav,yes\n")
    clips = data.index_source(root)
    assert [(c.path.name, c.word, c.speaker, c.split) for c in clips] == [
        ("a1_NO_1.wav", "yes", "a1", "train"), ("a2_NO_1.wav", "yes", "a2", "validation")]
    (root / "test.csv").write_text("path,word\nx,y\n")
    with pytest.raises(data.DataError, match="test.csv: needs the columns"):
        data.index_source(root)


def test_class_mapping_and_balance(folder_dataset):
    config = from_dict({"keywords": {"words": ["alpha", "beta"], "unknown_share": 0.5, "silence_share": 0.5}})
    dataset = data.load(config, [folder_dataset])
    train = dataset.splits["train"]
    counts = np.bincount(train.targets, minlength=4)
    per_keyword = (counts[2] + counts[3]) / 2
    assert counts[2] > 0 and counts[3] > 0
    assert counts[1] == round(0.5 * per_keyword)  # unknown: the 'other' word
    assert counts[0] == round(0.5 * per_keyword)  # silence: generated
    assert all(len(clip) == 16000 and clip.dtype == np.int16 for clip in train.audio)


def test_unknown_keyword_is_a_config_error(folder_dataset):
    config = from_dict({"keywords": {"words": ["alpha", "gamma"]}})
    with pytest.raises(ConfigError, match="keyword 'gamma'.*words found: alpha, beta, other"):
        data.load(config, [folder_dataset])


def test_corrupt_files_are_reported_and_counted(folder_dataset, capsys):
    (folder_dataset / "alpha" / "spk00_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage")
    (folder_dataset / "alpha" / "spk02_nohash_0.wav").write_bytes(b"RIFF")  # ends inside the header
    short = folder_dataset / "beta" / "spk01_nohash_0.wav"
    short.write_bytes(short.read_bytes()[:-1])  # half a sample: truncated data
    cut = folder_dataset / "beta" / "spk03_nohash_0.wav"
    cut.write_bytes(cut.read_bytes()[:-8000])  # whole samples, but 4,000 fewer than the header promises
    config = from_dict({"keywords": {"words": ["alpha", "beta"]}})
    dataset = data.load(config, [folder_dataset])
    assert len(dataset.skipped) == 4
    assert any("spk00_nohash_0.wav: not a readable PCM WAV" in s for s in dataset.skipped)
    assert any("spk01_nohash_0.wav: truncated data" in s for s in dataset.skipped)
    assert any("spk03_nohash_0.wav: truncated data (the header promises 16000 frames, the file holds 12000)" in s
               for s in dataset.skipped)
    assert cut not in [path for split in dataset.splits.values() for path in split.paths]
    assert all(re.search(r"\.wav: .*\(\S.*\)$", s) for s in dataset.skipped), dataset.skipped  # never "()"
    err = capsys.readouterr().err
    assert "skipped 4 unreadable files" in err and all(s in err for s in dataset.skipped)


def test_every_bad_file_of_the_folders_is_named_whatever_the_split(folder_dataset, capsys):
    # One bad file of a training speaker, one of a test speaker: scoring the validation split names both (they were
    # named only with --split all), and says the split is small and what scores more.
    config = from_dict({"keywords": {"words": ["alpha", "beta"]}})
    speakers = {data.speaker_split(f"spk{i:02d}", config.split): f"spk{i:02d}" for i in range(40)}
    bad = [folder_dataset / "alpha" / f"{speakers[split]}_nohash_0.wav" for split in ("train", "test")]
    bad[0].write_bytes(b"RIFF")
    bad[1].write_bytes(bad[1].read_bytes()[:-8000])
    clips = data.select_clips(config, [folder_dataset], "validation")
    err = capsys.readouterr().err
    for path in bad:
        assert sum(f"{path}: " in line for line in clips.skipped) == 1 and f"{path}: " in err
    assert len(clips.skipped) == 2 and clips.files == 120
    assert len(clips.targets) < data.FEW_CLIPS
    assert f"Only {len(clips.targets)} clips" in clips.describe() and "--split all" in clips.describe()
    everything = data.select_clips(config, [folder_dataset], "all")
    assert len(everything.skipped) == 2 and len(everything.targets) >= data.FEW_CLIPS
    assert "Only" not in everything.describe()


def test_the_header_check_refuses_what_reading_refuses(folder_dataset):
    cases = [b"RIFF", b"RIFF\x00\x00garbage"]
    good = (folder_dataset / "beta" / "spk01_nohash_0.wav").read_bytes()
    cases += [good[:-1], good[:-8000]]
    for i, content in enumerate(cases):
        path = folder_dataset / f"case{i}.wav"
        path.write_bytes(content)
        with pytest.raises(audio.AudioError) as reading:
            audio.read_pcm(path)
        with pytest.raises(audio.AudioError) as checking:
            audio.check_audio(path)
        assert str(checking.value) == str(reading.value)
    audio.check_audio(folder_dataset / "beta" / "spk01_nohash_0.wav")


def test_other_rates_and_stereo_are_converted(tmp_path):
    stereo = np.repeat(_tone(rate=44100, hz=1000)[:, None], 2, axis=1)
    _write(tmp_path / "s.wav", stereo, rate=44100, channels=2)
    converted = audio.read_audio(tmp_path / "s.wav", 16000)
    assert len(converted) == 16000
    spectrum = np.abs(np.fft.rfft(converted))
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1  # still a 1 kHz tone
    _write(tmp_path / "e.wav", np.zeros(0, np.int16), rate=8000)
    assert len(audio.read_audio(tmp_path / "e.wav", 16000)) == 0
    with pytest.raises(audio.AudioError, match="missing.wav: cannot be read"):
        audio.read_audio(tmp_path / "missing.wav", 16000)


def test_mix_at_snr_hits_the_requested_ratio():
    rng = np.random.default_rng(0)
    clip, noise = rng.normal(0, 0.3, 16000), rng.normal(0, 0.01, 16000)
    mixed = augment.mix_at_snr(clip, noise, 10.0)
    added = mixed - clip
    snr = 10 * np.log10(np.mean(clip**2) / np.mean(added**2))
    assert snr == pytest.approx(10.0, abs=1e-6)


def test_augment_is_seeded_and_keeps_length():
    config = from_dict({})
    noise = augment.generated_noise(16000, np.random.default_rng(0))
    clip = _tone()
    a = augment.augment(config, clip, noise, np.random.default_rng(5))
    b = augment.augment(config, clip, noise, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == clip.shape and a.dtype == np.int16 and not np.array_equal(a, clip)


def test_train_only_sources_and_unknown_drawn_per_source(folder_dataset, tmp_path):
    config = from_dict({"keywords": {"words": ["alpha", "beta"], "unknown_share": 1.0}})
    extra = tmp_path / "synthetic"
    for word, hz in (("alpha", 350), ("beta", 650), ("other", 950), ("more", 1200)):
        for speaker in range(30):
            _write(extra / word / f"voice{speaker:02d}_nohash_0.wav", _tone(hz=hz + speaker))
    alone = data.load(config, [folder_dataset])
    both = data.load(config, [folder_dataset], train_only=[extra])

    # The held-out splits are the real source's alone, the same clips whatever else is loaded.
    for split in ("validation", "test"):
        assert both.splits[split].paths == alone.splits[split].paths
    train_paths = both.splits["train"].paths
    assert sum(extra in path.parents for path in train_paths) == 4 * 30 - 30  # 'other'/'more': 30 of 60
    # Each source brings its own unknown words, as many as its clips per keyword.
    unknown = [p for p, t in zip(train_paths, both.splits["train"].targets, strict=True) if t == 1]
    real_unknown = [p for p in unknown if folder_dataset in p.parents]
    assert len(real_unknown) == sum(1 for p in alone.splits["train"].paths if p.parent.name == "other")
    assert len(unknown) - len(real_unknown) == 30
    assert both.summary()["train_only"] == [str(extra)]
    # and the card says how many speakers say each keyword, per source and split
    assert both.summary()["keyword_speakers"][str(extra)] == {"alpha": {"train": 30}, "beta": {"train": 30}}


def test_room_response_decays_at_its_rt60():
    rt60 = 0.4
    response = augment.room_response(rt60, 16000, np.random.default_rng(1))
    assert response[0] == 1.0 and len(response) == int(rt60 * 16000)
    tail = response[1:] ** 2
    early, late = tail[800:1600].mean(), tail[4000:4800].mean()  # 50-100 ms and 250-300 ms
    assert 10 * np.log10(early / late) == pytest.approx(60 * 0.2 / rt60, abs=3)  # 60 dB per rt60
    clip = _tone().astype(np.float32) / 32768
    wet = augment.reverberate(clip, response)
    assert wet.shape == clip.shape and augment.rms(wet) == pytest.approx(augment.rms(clip), rel=1e-6)
    assert not np.allclose(wet, clip)


def test_a_test_share_of_zero_trains_those_speakers_and_keeps_validation(folder_dataset):
    shared = data.index_source(folder_dataset)
    no_test = data.index_source(folder_dataset, from_dict({"split": {"test_percent": 0}}).split)
    assert [c.split for c in no_test if c.split != "train"] == [c.split for c in shared if c.split == "validation"]
    assert {c.path for c in no_test if c.split == "validation"} == {c.path for c in shared if c.split == "validation"}
    assert all(new.split == "train" for old, new in zip(shared, no_test, strict=True) if old.split == "test")


def test_an_empty_test_split_says_why():
    config = from_dict({"split": {"test_percent": 0}})
    assert "use --split validation" in data.empty_split_message(config, "test", ["set"])
    assert data.empty_split_message(from_dict({}), "test", ["set"]) == "no clips in split 'test' of set"
