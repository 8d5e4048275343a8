"""The listening check (kws.evaluation.keyword_check, scripts/bench_keyword_sequence.py): its scoring, and that what it reads
from the board over the serial line is what the board's pipeline computes for the sequence, times included."""

import shutil
import time

import numpy as np

from kws.board.pipeline import StreamingPipeline
from kws.board.sim import VirtualBoard
from kws.data import dataset as data
from kws.device.stream import TRAILING_SILENCE_S
from kws.evaluation import keyword_check
from kws.evaluation.evaluate import ModelDir


def test_score_counts_right_wrong_repeated_and_missed_words():
    seq = keyword_check.Sequence(np.zeros(1, np.int16), ["yes", "no", "yes"], [(1000, 3000), (3000, 5000),
                                                                              (5000, 7000)], ["a", "b", "c"])
    detections = [(500, "no"), (1500, "yes"), (2000, "yes"), (3500, "yes")]
    result = keyword_check.score(seq, detections)
    assert (result.keywords, result.correct, result.wrong) == (3, 1, 3)
    assert result.missed == ["no", "yes"]
    assert result.wrong_detections == [("(before the first word)", "no"), ("yes", "yes"), ("no", "yes")]


def test_sequence_takes_each_keyword_from_different_speakers_a_second_apart(tiny_model, synth_data):
    config = ModelDir(tiny_model).config
    clips = data.select_clips(config, [synth_data], "all")
    seq = keyword_check.sequence(config, clips, 2, seed=1)
    assert sorted(seq.words) == sorted(2 * list(config.keywords.words))
    for word in config.keywords.words:
        assert len({speaker for w, speaker in zip(seq.words, seq.speakers, strict=True) if w == word}) == 2
    rate = config.audio.sample_rate
    assert len(seq.samples) == rate * keyword_check.SILENCE_S + sum(
        (end - start) * rate // 1000 for start, end in seq.slots_ms)
    assert seq.slots_ms[0][0] == 1000
    assert all(seq.slots_ms[k][1] == seq.slots_ms[k + 1][0] for k in range(len(seq.slots_ms) - 1))


def test_the_board_reports_what_its_pipeline_computes_for_the_sequence(tiny_model, synth_data, tmp_path):
    # A threshold the tiny model's synthetic words clear (see test_device_tools), so that there is something to see.
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    with (model / "config.toml").open("a") as config_file:
        config_file.write("\n[recognizer]\nthreshold = 150\n")
    model_dir = ModelDir(model)
    config = model_dir.config
    seq = keyword_check.sequence(config, data.select_clips(config, [synth_data], "all"), 2, seed=0)
    with VirtualBoard(model, "litert", link=tmp_path / "board") as board:
        time.sleep(0.5)  # the board has been listening to its own input when the host connects, as a real one has
        on_board = keyword_check.run_on_board(str(board.link), seq, config.audio.sample_rate)
    pipeline = StreamingPipeline(model_dir, "litert")
    trailing = np.zeros(round(TRAILING_SILENCE_S * config.audio.sample_rate), np.int16)
    steps = pipeline.feed(np.concatenate([seq.samples, trailing]))
    expected = [(step.detection.time_ms, config.labels[step.detection.label_index]) for step in steps
                if step.detection is not None]
    # Stream time starts at the handshake on the board as in the pipeline: the slots and the DET times line up.
    assert on_board == expected and len(expected) >= 2
    assert keyword_check.score(seq, on_board).correct >= 1
