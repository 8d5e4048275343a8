"""kws calibrate: per-keyword thresholds fitted on calibration streams and checked on held-out ones, with scorers
that know the truth (so the right answer is known) and end to end on the tiny model with generated speech."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import tone_word
from kws import config as config_module
from kws.cli import main
from kws.commands import not_calibrated_note
from kws.common.defaults import SPREAD
from kws.data import augment
from kws.data import dataset as data
from kws.evaluation import calibrate, streaming

SR = 16000


@pytest.fixture(scope="module")
def config():
    return config_module.from_dict({"keywords": {"words": ["yes", "no"]}, "recognizer": {"threshold": 200}})


def _half(config, rng, per_word=6):
    labels = config.labels
    words = ["yes", "no", "unknown", "bird"]
    targets = [labels.index(w) if w in labels else -1 for w in words for _ in range(per_word)]
    names = [w for w in words for _ in range(per_word)]
    clips = [tone_word(rng, 300 + 100 * i) for i, w in enumerate(words) for _ in range(per_word)]
    return calibrate.Half(clips, targets, names, {"s1"})


def _scorer(config, stream, levels):
    """A model that hears the truth but is unsure in its own way: while a word is wholly inside the window its label
    gets levels[word] (the rest silence), "unknown" and "bird" come out as "yes" at levels["confusion"]."""
    labels = config.labels

    def score(start_ms, end_ms):
        scores = np.zeros(len(labels), np.uint8)
        inside = [e for e in stream.events if start_ms <= e.start_ms and e.end_ms <= end_ms]
        if not inside:
            scores[labels.index("silence")] = 255
            return scores
        word = inside[0].word
        level = levels.get(word, levels["confusion"])
        label = labels.index(word) if word in ("yes", "no") else labels.index("yes")
        scores[label] = level
        scores[labels.index("silence")] = 255 - level
        return scores

    return score


def _traces(config, streams, levels):
    return [streaming.scorer_trace(config, s, _scorer(config, s, levels)) for s in streams]


def _scored_half(config, seed, levels):
    """One half's streams (2 min each, 30 dB SNR) and the traces of a scorer with these levels."""
    rng = np.random.default_rng(seed)
    noise = augment.generated_noise(SR, rng, seconds=5)
    streams = calibrate.half_streams(config, _half(config, rng), noise, 2.0, 30.0, seed=1)
    return streams, _traces(config, streams, levels)


def test_per_keyword_thresholds_hear_a_quiet_keyword_and_reject_a_confusable_word(config):
    # "yes" is confident (230), "no" is heard at only 150, and other words are mistaken for "yes" at 170: one
    # threshold cannot take "no" without the confusions; one per keyword can (yes: 170 <= t < 230, no: t < 150).
    streams, traces = _scored_half(config, 3, {"yes": 230, "no": 150, "confusion": 170})
    assert {e.word for e in streams[1].events} == {"unknown", "bird"}
    best, per_window, points = calibrate.fit(streams, traces, config, (1.0,))
    fitted = best[1.0]
    thresholds = dict(zip(config.labels, fitted.setting.thresholds, strict=True))
    assert fitted.met_target and fitted.keyword.frr == 0 and fitted.non_keyword.false_accept_count == 0
    assert 170 <= thresholds["yes"] < 230 and thresholds["no"] < 150
    assert thresholds["silence"] == thresholds["unknown"] == config.recognizer.threshold
    assert points == 5 * 2 * 3 and set(per_window[1.0]) == set(calibrate.AVERAGE_WINDOWS_MS)
    # The single threshold that hears every "no" also takes the confusions (the old recognizer's dilemma).
    single = streaming.Setting(140, fitted.setting.average_window_ms, fitted.setting.suppression_ms,
                               fitted.setting.minimum_count)
    keyword, non_keyword = streaming.operating_point(streams, traces, config, single)
    assert keyword.frr == 0 and non_keyword.false_accept_count > 0
    summary = streaming.operating_summary(keyword, non_keyword, config.labels)
    causes = {(c["heard"], c["detected"]) for c in summary["false_accepts_by_cause"]}
    assert causes == {("unknown", "yes"), ("bird", "yes")}
    assert summary["false_accept_clips"] == summary["distinct_clips"] == 12  # every unknown and bird clip, replayed
    assert summary["per_keyword"]["no"]["delay_ms_median"] is not None


def test_a_spread_holds_the_keywords_near_one_threshold(config):
    # The levels of the test above: a shared threshold (spread 0) can keep the confusions out only by missing "no";
    # with each keyword 1 grid step (10 points) from the shared one, "yes" >= 170 and "no" <= 140 are still too far
    # apart; with 2 steps they are not.
    streams, traces = _scored_half(config, 3, {"yes": 230, "no": 150, "confusion": 170})
    keyword_ids = [config.labels.index(w) for w in ("yes", "no")]
    for spread, frr in ((0, 0.5), (1, 0.5), (2, 0.0)):
        fitted = calibrate.fit(streams, traces, config, (1.0,), spread)[0][1.0]
        yes, no = (fitted.setting.thresholds[k] for k in keyword_ids)
        assert fitted.met_target and abs(yes - no) <= 2 * 10 * spread
        assert fitted.keyword.frr == pytest.approx(frr, abs=0.02)


def test_the_fit_prefers_settings_within_the_median_delay(config):
    # Of two settings that meet the false-accept target, one within the delay limit beats one that misses fewer
    # keywords but late; a fit that no setting can bring within the limit says so.
    import dataclasses

    streams, traces = _scored_half(config, 3, {"yes": 230, "no": 150, "confusion": 170})
    free = calibrate.fit(streams, traces, config, (1.0,))[0][1.0]
    assert free.met_target and not free.slow
    missing = dataclasses.replace(free.keyword, hits=free.keyword.hits - 1)
    late = calibrate.Fitted(free.setting, free.keyword, free.non_keyword, True, True)
    on_time = calibrate.Fitted(free.setting, missing, free.non_keyword, True, False)
    assert min([late, on_time], key=lambda f: f.key) is on_time
    limited = dataclasses.replace(config, recognizer=dataclasses.replace(config.recognizer, median_delay_ms=1))
    assert calibrate.fit(streams, traces, limited, (1.0,))[0][1.0].slow


def test_windows_shorter_than_the_inference_period_are_not_fitted(config):
    # Every 15 strides (300 ms) a 250 ms window holds one result, which rule 3 never averages: fitted, it met any
    # false-accept target by detecting nothing (numbers_ar's first 64-channel calibration chose it, FRR 1.0).
    import dataclasses

    sparse = dataclasses.replace(config, recognizer=dataclasses.replace(config.recognizer, inference_every_strides=15))
    streams, traces = _scored_half(sparse, 3, {"yes": 230, "no": 150, "confusion": 170})
    best, per_window, points = calibrate.fit(streams, traces, sparse, (1.0,))
    assert set(per_window[1.0]) == {350, 500, 750, 1000}
    assert points == (1 + 1 + 2 + 2) * 3  # a minimum count of 3 needs a window of 2 periods
    assert best[1.0].keyword.hits > 0


def test_a_keyword_heard_where_another_was_said_counts_against_its_threshold(config):
    # "yes" (4 clips a cycle) scores 140; "no" (8 clips) is heard as "yes" at 200 and never as itself. A "yes"
    # threshold under 140 hears every "yes" but reports each "no" as "yes"; counting only misses, the fit took it.
    # Counting those wrong detections as errors too, missing the 4 "yes" is the smaller harm.
    rng = np.random.default_rng(6)
    labels = config.labels
    words = ["yes"] * 4 + ["no"] * 8 + ["unknown"] * 4
    half = calibrate.Half([tone_word(rng, 400) for _ in words], [labels.index(w) for w in words], words, {"s1"})
    streams = calibrate.half_streams(config, half, augment.generated_noise(SR, rng, seconds=5), 2.0, 30.0, seed=1)

    def scorer(stream):
        def score(start_ms, end_ms):
            scores = np.zeros(len(labels), np.uint8)
            inside = [e for e in stream.events if start_ms <= e.start_ms and e.end_ms <= end_ms]
            level = {"yes": 140, "no": 200}.get(inside[0].word, 0) if inside else 0
            scores[labels.index("yes")] = level
            scores[labels.index("silence")] = 255 - level
            return scores
        return score

    traces = [streaming.scorer_trace(config, stream, scorer(stream)) for stream in streams]
    fitted = calibrate.fit(streams, traces, config, (1.0,))[0][1.0]
    assert fitted.setting.thresholds[labels.index("yes")] >= 200
    assert fitted.keyword.false_accept_count == 0 and fitted.keyword_errors == pytest.approx(1.0)


def test_no_keyword_is_silenced_to_meet_the_false_accept_target(config):
    # Other words score as "yes" at 240, above "yes" itself (230): only a threshold above 240 keeps them out. The
    # fit used to break that tie with 255, a "yes" that can never be detected; every threshold it offers now is one
    # a confident keyword (scores up to 255) still passes.
    streams, traces = _scored_half(config, 5, {"yes": 230, "no": 150, "confusion": 240})
    fitted = calibrate.fit(streams, traces, config, (1.0,))[0][1.0]
    thresholds = dict(zip(config.labels, fitted.setting.thresholds, strict=True))
    assert thresholds["yes"] == max(calibrate.THRESHOLDS) < 255 and thresholds["no"] < 150


def test_held_out_figures_show_a_fit_that_does_not_carry_over(config):
    # Calibration clips of "no" are heard at 150, held-out ones at 110: thresholds fitted on the first miss the
    # second, and the record says so instead of repeating the calibration figure.
    rng = np.random.default_rng(4)
    noise = augment.generated_noise(SR, rng, seconds=5)
    calibration = calibrate.half_streams(config, _half(config, rng), noise, 2.0, 30.0, seed=1)
    heldout = calibrate.half_streams(config, _half(config, rng), noise, 2.0, 30.0, seed=2)
    fitted = calibrate.fit(calibration, _traces(config, calibration, {"yes": 230, "no": 150, "confusion": 170}),
                           config, (1.0,))[0][1.0]
    keyword, _ = streaming.operating_point(heldout, _traces(config, heldout, {"yes": 230, "no": 110,
                                                                              "confusion": 170}),
                                           config, fitted.setting)
    assert fitted.keyword.frr == 0
    per_keyword = keyword.summary(config.labels)["per_keyword"]
    assert per_keyword["no"]["frr"] == 1.0 and per_keyword["yes"]["frr"] == 0.0


def test_halves_are_cut_by_speaker_when_every_keyword_is_in_both(config, tmp_path):
    labels = config.labels
    rng = np.random.default_rng(0)
    paths, targets = [], []
    for speaker in [f"spk{i}" for i in range(12)]:
        for word in ("yes", "no", "unknown"):
            # Unknown words in the Speech Commands test-set layout: _unknown_/<word>_<speaker>_nohash_<n>.wav
            paths.append(Path(f"/d/_unknown_/cat_{speaker}_nohash_0.wav" if word == "unknown"
                              else f"/d/{word}/{speaker}_nohash_0.wav"))
            targets.append(labels.index(word))
    clips = data.Clips([tone_word(rng, 400) for _ in paths], np.array(targets), paths, ["/d"], "validation", [])
    others = [(tone_word(rng, 500), "bird", f"other{i}") for i in range(10)]
    first, second, how = calibrate.split_halves(config, clips, others)
    assert how == "speakers" and not first.speakers & second.speakers
    assert first.speakers | second.speakers == {f"spk{i}" for i in range(12)} | {f"other{i}" for i in range(10)}
    assert len(first.audio) + len(second.audio) == len(paths) + len(others)
    assert "cat" in first.words + second.words and -1 in first.targets + second.targets
    # One speaker only: the halves are other clips of the same speaker, alternately within each word.
    lonely = data.Clips(clips.audio[:3] * 2, np.array(targets[:3] * 2), paths[:3] * 2, ["/d"], "validation", [])
    first, second, how = calibrate.split_halves(config, lonely, [])
    assert how == "clips" and sorted(first.targets) == sorted(second.targets) == sorted(targets[:3])


def test_other_words_skip_keywords_and_name_bad_files(config, tmp_path):
    from kws.data import audio

    for word in ("bird", "yes", "_background_noise_"):
        (tmp_path / word).mkdir()
        audio.write_wav(tmp_path / word / "a1_nohash_0.wav", np.zeros(8000, np.int16), SR)
    (tmp_path / "bird" / "broken_nohash_0.wav").write_bytes(b"RIFF")
    skipped: list[str] = []
    clips = calibrate.other_words(config, [str(tmp_path)], skipped)
    assert [(word, speaker) for _, word, speaker in clips] == [("bird", "a1")]
    assert len(clips[0][0]) == config.clip_samples and len(skipped) == 1 and "broken" in skipped[0]
    # Only the scoring split's speakers: "a1" is a training speaker of the default split.
    assert data.speaker_split("a1", config.split) == "train"
    with pytest.raises(data.DataError, match="validation speakers"):
        calibrate.other_words(config, [str(tmp_path)], [], ("validation",))
    with pytest.raises(data.DataError, match="no <word>"):
        calibrate.other_words(config, [str(tmp_path / "yes")], [])


def test_export_says_the_recognizer_is_not_calibrated_and_how_to_calibrate(config):
    note = not_calibrated_note(config, "models/my model", ["data/a", "data/b"], ["noise"])
    assert "NOT calibrated" in note and "thresholds 200 for every keyword" in note
    tuned = config_module.from_dict({"keywords": {"words": ["yes", "no"]}, "recognizer": {"thresholds": {"no": 90}}})
    assert "thresholds yes 200, no 90" in not_calibrated_note(tuned, "m", ["d"], [])
    assert note.splitlines()[-1].strip() == ("kws calibrate --model 'models/my model' --data data/a data/b "
                                             "--noise noise")


def _strip_per_keyword_lines(header: str) -> str:
    """The header as exported before per-keyword thresholds (the shipped models' form)."""
    return "".join(line for line in header.splitlines(keepends=True)
                   if not line.startswith(("#define KWS_RECOGNIZER_THRESHOLDS", "#define KWS_RECOGNIZER_CALIBRATED")))


def test_calibrate_end_to_end_writes_per_keyword_thresholds_and_reports_held_out(tiny_model, synth_data, tmp_path,
                                                                                  capsys):
    from kws.data import synth

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    header = model / "model_settings.h"
    header.write_text(_strip_per_keyword_lines(header.read_text()))  # an old header is upgraded in place
    before = header.read_text().splitlines(keepends=True)
    other = tmp_path / "other"
    synth.synthesize(["bird", "house"], other, voices=["en-us", "en-gb"], speeds=[160], pitches=[50], progress=False)
    assert main(["calibrate", "--model", str(model), "--data", str(synth_data), "--stream-minutes", "0.5",
                 "--target-fa-per-hour", "200", "--other-words", str(other)]) == 0
    printed = capsys.readouterr().out
    assert "held-out" in printed and "calibration" in printed and "fitted for 5 FA/h" in printed
    after = header.read_text().splitlines(keepends=True)
    added = [line for line in after if line not in before]
    assert len(after) == len(before) + 2 and all(line.startswith("#define KWS_RECOGNIZER_") for line in added)
    card = json.loads((model / "model_card.json").read_text())["recognizer"]
    defines = {line.split()[1]: line.split(None, 2)[2].strip() for line in after
               if line.startswith("#define KWS_RECOGNIZER_")}
    config = config_module.load(model / "config.toml")
    assert config.recognizer.thresholds == card["thresholds"] and set(card["thresholds"]) == {"yes", "no"}
    assert defines["KWS_RECOGNIZER_THRESHOLDS"] == "{" + ", ".join(map(str, config.label_thresholds)) + "}"
    assert defines["KWS_RECOGNIZER_CALIBRATED"] == "1"
    assert int(defines["KWS_RECOGNIZER_AVERAGE_WINDOW_MS"]) == card["average_window_ms"] == \
        config.recognizer.average_window_ms
    assert int(defines["KWS_RECOGNIZER_MINIMUM_COUNT"]) == card["minimum_count"] == config.recognizer.minimum_count
    for side in ("calibration", "heldout"):
        assert card[side]["hours"] == pytest.approx(0.5 / 60, abs=1e-3) and card[side]["keywords"] > 0
        assert set(card[side]["per_keyword"]) <= {"yes", "no"}
    assert card["met_target"] == (card["calibration"]["fa_per_hour"] <= 200)
    assert card["grid"]["spread"] == SPREAD
    yes, no = card["thresholds"]["yes"], card["thresholds"]["no"]
    assert abs(yes - no) <= 2 * 10 * SPREAD
    assert set(card["at_targets"]) == {"200", "1", "5"}
    assert set(card["window_cost"]) == {str(w) for w in calibrate.AVERAGE_WINDOWS_MS}
    assert card["other_word_clips"] > 0 and card["halves"]["by"] in ("speakers", "clips")
    words = {e["heard"] for e in card["heldout"]["false_accepts_by_cause"]}
    assert words <= {"noise", "yes", "no", "up", "down", "cat", "tree", "bird", "house"}
    # The virtual board's HELLO would show these thresholds and calibrated=1 (kws.board.sim reads the same files).
    from kws.training.firmware_files import header_calibrated

    assert header_calibrated(header.read_text())
    # kws report on the calibrated model: per-keyword evidence, and calibration beside held-out from the card.
    out = tmp_path / "report"
    assert main(["report", "--model", str(model), "--data", str(synth_data), "--out", str(out),
                 "--stream-minutes", "0.5", "--other-words", str(other)]) == 0
    assert (out / "det_per_keyword.png").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    stream = metrics["streaming"]
    assert stream["setting"]["thresholds"] == list(config.label_thresholds)
    assert set(stream["per_keyword_det"]) == {"yes", "no"}
    assert [row["average_window_ms"] for row in stream["window_cost"]] == [250, 350, 500, 750, 1000]
    assert stream["calibration"]["thresholds"] == card["thresholds"]
    op = stream["operating"]
    causes = op["false_accepts_by_cause"] + op["keyword_stream_false_accepts"]["by_cause"]
    assert all(not c["heard"].startswith("label ") for c in causes)  # the words themselves
    text = (out / "report.md").read_text()
    heldout_speakers = [p for p in other.glob("*/*.wav")
                        if data.speaker_split(data.speaker_of(p), config.split) in ("validation", "test")]
    assert 0 < stream["other_word_clips"] == len(heldout_speakers) < len(list(other.glob("*/*.wav")))
    assert stream["streams"][1]["distinct_clips"] == metrics["data"]["per_class"]["unknown"] + len(heldout_speakers)
    for heading in ("The non-keyword stream also holds", "### Per keyword", "False accepts by cause", "What the averaging window costs",
                    "### How the setting was chosen", "| chosen |", "| fitted for 5 FA/h |"):
        assert heading in text, heading


def test_a_keyword_the_calibration_streams_never_say_keeps_the_default_threshold():
    config = config_module.from_dict({"keywords": {"words": ["yes", "no", "go"]}, "recognizer": {"threshold": 210}})
    rng = np.random.default_rng(5)
    streams = calibrate.half_streams(config, _half(config, rng), augment.generated_noise(SR, rng, seconds=5), 1.0, 30.0,
                                     seed=1)
    fitted = calibrate.fit(streams, _traces(config, streams, {"yes": 230, "no": 150, "confusion": 170}), config,
                           (1.0,))[0][1.0]
    assert dict(zip(config.labels, fitted.setting.thresholds, strict=True))["go"] == 210


def test_calibrate_refuses_a_spread_that_is_not_a_number_of_steps(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["calibrate", "--model", "m", "--data", "d", "--spread", "wide"])
    assert exit_info.value.code == 2 and "'wide': a number of grid steps" in capsys.readouterr().err


def test_scoring_every_clip_never_plays_the_training_speakers_other_words():
    # `kws train --unlabeled` learns from the other words' training speakers: a report or calibration over a folder
    # kept apart (--split all) must not count their words as unseen non-keyword speech.
    assert calibrate.other_word_splits("all") == ("validation", "test")
    assert calibrate.other_word_splits("heldout") == ("validation", "test")
    assert calibrate.other_word_splits("validation") == ("validation",)
    assert calibrate.other_word_splits("train") == ("train",)
