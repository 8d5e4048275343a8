"""kws report / kws calibrate: the streaming counts with a classifier that knows the truth, the MAC counter against
hand arithmetic, and both commands end to end on the tiny model."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import tone_word
from kws import config as config_module
from kws.cli import build_parser, main
from kws.data import augment
from kws.data import dataset as data
from kws.evaluation import report, stream_build, stream_sources, streaming

SR = 16000
# A recognizer that a perfect scorer (one-hot only while the whole word is inside the window) satisfies: a word of
# <= 0.5 s is fully inside the 0.99 s window for >= 0.49 s, more than the 0.3 s average.
STUB_SETTING = streaming.Setting(threshold=150, average_window_ms=300, suppression_ms=1000, minimum_count=3)


@pytest.fixture(scope="module")
def config():
    return config_module.from_dict({"keywords": {"words": ["yes", "no"]}})


def _streams(config, minutes=1.0):
    rng = np.random.default_rng(5)
    labels = config.labels  # silence, unknown, yes, no
    targets = [labels.index(word) for word in ("yes", "no", "unknown") for _ in range(6)]
    clips = [tone_word(rng, 300 + 100 * t) for t in targets]
    noise = augment.generated_noise(SR, rng, seconds=5)
    return stream_build.keyword_streams(config, clips, targets, noise, minutes, 30.0, seed=1)


def _truth_scorer(config, stream, relabel=None):
    """Scores as a perfect model would give them: the label of the word wholly inside the window, else silence."""
    labels = config.labels
    relabel = relabel or {}

    def score(start_ms, end_ms):
        scores = np.zeros(len(labels), np.uint8)
        inside = [e for e in stream.events if start_ms <= e.start_ms and e.end_ms <= end_ms]
        scores[relabel.get(inside[0].label, inside[0].label) if inside else labels.index("silence")] = 255
        return scores

    return score


def test_voiced_span_finds_the_burst():
    clip = np.zeros(SR, np.int16)
    clip[4000:9600] = 10000
    assert stream_build.voiced_span(clip, SR) == (250, 600)


def test_a_perfect_classifier_detects_every_inserted_keyword_once(config):
    streams = _streams(config)
    traces = [streaming.scorer_trace(config, s, _truth_scorer(config, s)) for s in streams]
    keywords, others = streams
    assert len(keywords.events) >= 12 and all(config.labels[e.label] in ("yes", "no") for e in keywords.events)
    assert others.events and all(config.labels[e.label] == "unknown" for e in others.events)
    outcome = streaming.evaluate(streams, traces, config, STUB_SETTING)
    assert outcome.keywords == len(keywords.events)
    assert outcome.hits == outcome.keywords and outcome.frr == 0.0
    assert outcome.false_accept_count == 0
    assert all(0 < delay <= streaming.TOLERANCE_MS for delay in outcome.delays_ms)
    assert outcome.hours == pytest.approx(2 / 60)
    # gaps of at least 1.5 s of noise only between clips
    for a, b in zip(keywords.events, keywords.events[1:], strict=False):
        assert b.start_ms - a.end_ms >= 1500


def test_false_accepts_are_counted_at_known_times(config):
    keywords, _ = _streams(config)
    yes, no = config.labels.index("yes"), config.labels.index("no")
    # A noise-only minute on which the scorer says "yes" for 0.5 s at three known times: three false accepts.
    rng = np.random.default_rng(2)
    quiet = stream_build.build_stream("noise", [], [], augment.generated_noise(SR, rng, seconds=5), 1.0, SR, 30.0, 0.1, rng)
    fire_at = (10_000, 25_000, 40_000)

    def fires(start_ms, end_ms):
        scores = np.zeros(len(config.labels), np.uint8)
        scores[yes if any(t <= end_ms < t + 500 for t in fire_at) else 0] = 255
        return scores

    outcome = streaming.evaluate([quiet], [streaming.scorer_trace(config, quiet, fires)], config, STUB_SETTING)
    assert outcome.false_accepts == {"background": 3}
    assert outcome.fa_per_hour == pytest.approx(3 * 60)
    # Every "yes" heard as "no": each is a wrong-label false accept and a miss; the "no"s are still hits.
    trace = streaming.scorer_trace(config, keywords, _truth_scorer(config, keywords, relabel={yes: no}))
    outcome = streaming.evaluate([keywords], [trace], config, STUB_SETTING)
    said_yes = sum(e.label == yes for e in keywords.events)
    assert outcome.false_accepts == {"wrong_label": said_yes}
    assert outcome.hits == len(keywords.events) - said_yes


def test_false_accepts_of_one_replayed_clip_widen_the_interval():
    # 30 false accepts in 4 h: spread over 30 of 300 clips they are 30 pieces of evidence and the Poisson interval
    # holds; all from one clip replayed 30 times they are one, and another set of speakers may have none or several.
    from collections import Counter

    spread = streaming.Outcome(hours=4.0, false_accepts=Counter(unknown_word=30), clips=300,
                               clip_false_accepts=Counter({("non-keywords", i): 1 for i in range(30)}))
    clustered = streaming.Outcome(hours=4.0, false_accepts=Counter(unknown_word=30), clips=300,
                                  clip_false_accepts=Counter({("non-keywords", 7): 30}))
    poisson = streaming.poisson_rate_interval(30, 4.0)
    assert np.allclose(spread.fa_per_hour_interval(), poisson, rtol=0.05)
    low, high = clustered.fa_per_hour_interval()
    assert 0 < low < poisson[0] / 10 and high >= 2 * poisson[1]  # one cluster: little evidence, but some
    assert streaming.Outcome(hours=4.0, clips=300).fa_per_hour_interval() == streaming.poisson_rate_interval(0, 4.0)


def test_thirteen_false_accepts_from_a_few_clips_bound_the_rate_above_zero():
    # 13 false accepts in 10 minutes from 3 clips printed "78/h, 95% CI 0.000-192.000": a resample of the clips
    # leaves all three out with probability about e^-3 (5%), so the bootstrap's 2.5th percentile is 0, though the
    # rate that gave 13 is surely above 0. Bounded by the clusters (3, exact), it is above 0 and below Poisson's.
    from collections import Counter

    hours = 10 / 60
    poisson = streaming.poisson_rate_interval(13, hours)
    clusters = streaming.Outcome(hours=hours, false_accepts=Counter(unknown_word=13), clips=600,
                                 clip_false_accepts=Counter({("non-keywords", 1): 5, ("non-keywords", 2): 4,
                                                             ("non-keywords", 3): 4}))
    low, high = clusters.fa_per_hour_interval()
    assert 0.2 * poisson[0] < low < poisson[0] and high > poisson[1]
    assert low == pytest.approx(streaming.poisson_bounds(3)[0] * 13 / 3 / hours, abs=1e-3)
    # A background false accept is a cluster of its own: 13 of them are Poisson's 13 events at both ends.
    background = streaming.Outcome(hours=hours, false_accepts=Counter(unknown_word=1, background=12), clips=600,
                                   clip_false_accepts=Counter({("non-keywords", 1): 1}))
    assert background.fa_per_hour_interval()[0] == poisson[0]


def test_the_fa_target_is_judged_only_on_streams_that_could_show_it_met(capsys):
    # A default report ran 10-minute streams against 1 FA/h: zero false accepts there would still allow 22/h.
    assert stream_sources.stream_length(1.0) == 222 and stream_sources.stream_length(5.0) == 45 and stream_sources.stream_length(100) == 10
    assert "222 min" in capsys.readouterr().err
    parser = build_parser()
    assert parser.parse_args(["report", "--model", "m", "--data", "d"]).stream_minutes is None
    assert parser.parse_args(["calibrate", "--model", "m", "--data", "d"]).stream_minutes is None

    def judged(minutes: float, false_accepts: int) -> dict:
        hours = minutes / 60
        return report.fa_judgement({"hours": hours, "fa_per_hour": false_accepts / hours,
                                    "fa_per_hour_ci95": streaming.poisson_rate_interval(false_accepts, hours)}, 1.0)

    short = judged(10, 0)
    assert short["met"] is None and "--stream-minutes 222" in short["note"]
    assert judged(10, 13) == {"met": False}  # 13 in 10 minutes: above 1/h whatever the stream length
    assert judged(222, 0) == {"met": True} and judged(222, 3) == {"met": True} and judged(222, 5) == {"met": False}


def test_operating_point_takes_misses_from_keywords_and_false_accepts_from_the_rest(config):
    streams = _streams(config)
    keywords, others = streams
    yes, no = config.labels.index("yes"), config.labels.index("no")
    unknown = config.labels.index("unknown")
    # Every "yes" heard as "no" and every unknown word heard as "yes".
    traces = [streaming.scorer_trace(config, keywords, _truth_scorer(config, keywords, relabel={yes: no})),
              streaming.scorer_trace(config, others, _truth_scorer(config, others, relabel={unknown: yes}))]
    keyword, non_keyword = streaming.operating_point(streams, traces, config, STUB_SETTING)
    said_yes = sum(e.label == yes for e in keywords.events)
    summary = streaming.operating_summary(keyword, non_keyword, config.labels)
    assert summary["frr"] == pytest.approx(said_yes / len(keywords.events), abs=1e-4)
    assert summary["false_accepts"] == len(others.events)
    assert summary["false_accepts_by_kind"] == {"unknown_word": len(others.events)}
    assert summary["fa_per_hour"] == pytest.approx(len(others.events) / others.hours, rel=1e-3)
    assert summary["keyword_stream_false_accepts"]["by_kind"] == {"wrong_label": said_yes}


def test_the_inference_schedule_is_the_pipelines(tiny_model):
    from kws.evaluation.evaluate import ModelDir

    model_dir = ModelDir(tiny_model)
    audio = (np.random.default_rng(0).standard_normal(3 * SR + 123) * 2000).astype(np.int16)
    stream = stream_build.Stream("noise", audio, SR, [], None, 0)
    trace = streaming.model_trace(model_dir, stream, "litert")
    ends, starts = streaming.inference_times(model_dir.config, len(audio))
    assert trace.times_ms.tolist() == ends.tolist()
    assert (ends - starts).tolist() == [990] * len(ends)  # 49 slices of 30 ms every 20 ms


def test_held_out_loading_picks_the_clips_of_a_full_load(tiny_config_path, synth_data):
    config = config_module.load(tiny_config_path)
    full = data.load(config, [synth_data])
    held = data.load(config, [synth_data], splits=("validation", "test"))
    assert not held.splits["train"].paths
    for split in ("validation", "test"):
        assert held.splits[split].paths == full.splits[split].paths
        assert held.splits[split].targets == full.splits[split].targets


def test_mac_counter_matches_hand_arithmetic():
    import tf_keras

    from kws.cost.estimate import estimate_model
    from kws.training.export import to_int8_tflite

    inputs = tf_keras.Input((10, 8, 1))
    x = tf_keras.layers.Conv2D(4, (3, 3), activation="relu")(inputs)  # -> 8x6x4
    x = tf_keras.layers.DepthwiseConv2D((3, 3), activation="relu")(x)  # -> 6x4x4
    x = tf_keras.layers.Flatten()(x)  # 96
    outputs = tf_keras.layers.Dense(5)(x)
    model = tf_keras.Model(inputs, outputs)
    tflite = to_int8_tflite(model, np.random.default_rng(0).standard_normal((20, 10, 8, 1)).astype(np.float32))
    layers = {op.op: op for op in estimate_model(tflite).ops if op.macs}
    assert {op: layer.macs for op, layer in layers.items()} == {
        "CONV_2D": 8 * 6 * 4 * (3 * 3 * 1),  # each output: a 3x3 window of the one input channel
        "DEPTHWISE_CONV_2D": 6 * 4 * 4 * (3 * 3),  # each output: a 3x3 window of its own channel
        "FULLY_CONNECTED": 96 * 5}
    # The im2col patch the convolution builds: one 3x3 window per output position, shared by its 4 channels.
    assert layers["CONV_2D"].kind == "CONV_2D one input channel"
    assert layers["CONV_2D"].patch_elements == 8 * 6 * (3 * 3 * 1)


def _copy_model(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    return model


def test_report_end_to_end(tiny_model, synth_data, tmp_path):
    model = _copy_model(tiny_model, tmp_path)
    card = (model / "model_card.json").read_bytes()
    out = tmp_path / "report"
    assert main(["report", "--model", str(model), "--data", str(synth_data), "--out", str(out),
                 "--stream-minutes", "0.5", "--unseen-noise", str(_noise_file(tmp_path))]) == 0
    # A report written elsewhere is a trial: the model folder is left as it was.
    assert (model / "model_card.json").read_bytes() == card and not (model / "report").exists()
    for name in ("report.md", "metrics.json", "confusion.png", "accuracy_vs_snr.png", "det.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    clips = metrics["data"]["clips"]
    assert metrics["accuracy"]["int8"]["clips"] == clips > 0
    assert sum(metrics["data"]["per_class"].values()) == clips
    curves = metrics["noise"]["curves"]
    assert [c["unseen"] for c in curves] == [False, False, False, True]
    assert all(p["clips"] == metrics["noise"]["clips"] for c in curves for p in c["points"])
    operating = metrics["streaming"]["operating"]
    assert operating["keywords"] > 0 and operating["hours"] == pytest.approx(0.5 / 60, abs=1e-3)  # the non-keyword stream
    assert metrics["cost"]["macs"] > 0 and metrics["memory"]["flash"]["total_bytes"] > 0
    ble = metrics["cost"]["ble"]  # the radio's estimate for the firmware's schedule, labelled as one
    assert ble["advertising_mw"] > 0 and "not measured" in ble["source"]
    report = (out / "report.md").read_text()
    assert "Bluetooth LE, if the firmware's peripheral is on (an estimate" in report
    for heading in ("## Summary", "## 1. Accuracy", "## 2. Noise robustness", "## 3. Streaming",
                    "## 4. Device cost", "## 5. Memory", "(unseen)"):
        assert heading in report


def _noise_file(tmp_path):
    from kws.data import audio

    path = tmp_path / "hum.wav"
    t = np.arange(3 * SR) / SR
    audio.write_wav(path, audio.float_to_int16(0.2 * np.sin(2 * np.pi * 150 * t)), SR)
    return path


def test_a_failing_report_leaves_no_folder_behind(tiny_model, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--model", str(tiny_model), "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
    assert not out.exists()


def test_the_model_card_records_no_absolute_path(tiny_model, tmp_path):
    from kws.common.paths import REPO_ROOT
    from kws.training.export import update_card

    model = _copy_model(tiny_model, tmp_path)
    report = tmp_path / "elsewhere" / "report"
    card = update_card(model, {"report": {"folder": str(report)}},
                       f"kws report --model {model} --data {REPO_ROOT / 'data' / 'x'} --out={report}")
    words = [word for text in _strings(json.loads((model / "model_card.json").read_text())) for word in text.split()]
    assert not [word for word in words if "=/" in word or word.startswith("/")]
    assert card["report"]["folder"] == os.path.relpath(report, REPO_ROOT)
    assert card["recipe"][-1] == (f"kws report --model {os.path.relpath(model, REPO_ROOT)} --data data/x "
                                  f"--out={os.path.relpath(report, REPO_ROOT)}")


def _strings(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_a_ten_hour_stream_is_rendered_a_stretch_at_a_time():
    import tracemalloc

    rng = np.random.default_rng(2)
    clips = [(rng.standard_normal(SR) * 3000).astype(np.int16) for _ in range(4)]
    noise = augment.generated_noise(SR, rng, seconds=5)
    tracemalloc.start()
    stream = stream_build.build_stream("long", clips, [2, 3, 2, 3], noise, 600.0, SR, 10.0, 0.1, rng)
    built = tracemalloc.get_traced_memory()[1]
    hour_five = stream.audio[5 * 3600 * SR:5 * 3600 * SR + 60 * SR]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(stream.audio) == 600 * 60 * SR and stream.hours == pytest.approx(10.0)
    assert len(stream.events) > 10_000 and len(hour_five) == 60 * SR
    assert built < 20e6 and peak < 40e6  # the whole stream as int16 would be 1.15 GB
    # Stretches join seamlessly: any cut gives the same audio.
    start = 3600 * SR
    whole = stream.audio[start:start + 10 * SR]
    pieces = np.concatenate([stream.audio[a:min(a + 7777, start + 10 * SR)] for a in range(start, start + 10 * SR, 7777)])
    np.testing.assert_array_equal(whole, pieces)
    inside = [e for e in stream.events if start <= e.start_ms * SR // 1000 < start + 9 * SR]
    assert inside and np.abs(whole).max() > 1000  # clips are there, above the noise
