"""The firmware main loop on the host: audio in, detections out, stride by stride as the board runs it.

This is the one streaming implementation; the virtual board (`kws sim`) and streaming evaluation both use it.
Per stride of audio the config's front end (kws.frontends.dispatch: the microfrontend or the MLPerf MFCCs, the board's C,
state continuous over the whole stream) makes one slice of the model's input window of the last `num_slices`
slices, in int8 as the firmware scales it. Once the window is full the int8 model runs every `recognizer.inference_every_strides`
strides, its outputs become 0..255 scores (`kws_scores_from_int8`) and the firmware's recognizer decides whether a
keyword was spoken. `reset()` is what the board does on CLIP_BEGIN and `classify_window()` what it does on CLIP_END.

Timings are host wall-clock microseconds (`time.perf_counter_ns`), not board cycles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kws.board import core
from kws.evaluation.evaluate import ModelDir
from kws.frontends.dispatch import streaming_window


@dataclass(frozen=True)
class Step:
    """One inference of the stream."""

    time_ms: int  # stream time at the end of the slice that triggered it
    scores: np.ndarray  # uint8, one per label, model output order
    detection: core.Detection | None
    fe_us: int  # front end + scaling of the last stride
    inf_us: int  # the model
    step_us: int  # the whole stride: front end, window, model, recognizer
    output: np.ndarray | None = None  # int8 model outputs behind the scores (kws m4 compares the board's with them)


def _us_since(start_ns: int) -> int:
    return (time.perf_counter_ns() - start_ns) // 1000


class StreamingPipeline:
    """Front end, feature window, int8 model and recognizer of one stream."""

    def __init__(self, model_dir: ModelDir, backend: str = "tflm",
                 stage_listener: Callable[[str], None] | None = None) -> None:
        """stage_listener is told "front_end" after each slice and "inference" after each inference, where the
        firmware raises its marker pins (the virtual board drives a virtual power monitor with it)."""
        config = self.config = model_dir.config
        self._stage_listener = stage_listener or (lambda stage: None)
        self.labels = config.labels
        self.sample_rate = config.audio.sample_rate
        self.model = model_dir.int8(backend)
        self.scaling = model_dir.scaling(self.model)
        self._features = streaming_window(config, self.scaling)
        rec = config.recognizer
        reportable = [label in config.keywords.words for label in self.labels]
        self.recognizer = core.Recognizer(len(self.labels), reportable, rec.average_window_ms, rec.threshold,
                                          rec.suppression_ms, rec.minimum_count, config.label_thresholds)
        self._every = rec.inference_every_strides
        self._window_samples, self._stride_samples = config.window_samples, config.stride_samples
        self.reset()

    @property
    def time_ms(self) -> int:
        return self.samples * 1000 // self.sample_rate

    def reset(self) -> None:
        """The board's pipeline_reset (CLIP_BEGIN, a change of input): a fresh front end, a silent window, a
        recognizer with no history and the audio clock back at 0."""
        self.samples = 0  # consumed since the reset: the clock of DET times and of the recognizer
        self._features.reset()
        self.recognizer.reset()
        self._slices = 0  # since the reset
        self._until_slice = self._window_samples  # samples the front end needs for its next slice
        self.clip_fe_us = 0  # front-end time since the reset (RESULT's fe_us)
        self.last_inf_us = 0

    def feed(self, samples: np.ndarray) -> list[Step]:
        """Streams int16 samples; returns one Step per inference they triggered."""
        samples = np.asarray(samples, np.int16)
        steps = []
        offset = 0
        # Cut the input at slice boundaries so each front-end call makes at most one slice: that gives every slice
        # its own stream time and its own front-end timing, as the board's stride loop has.
        while offset < len(samples):
            take = min(self._until_slice, len(samples) - offset)
            start = time.perf_counter_ns()
            slices = self._features.process(samples[offset:offset + take])
            offset += take
            self.samples += take
            self._until_slice -= take
            if not slices:
                continue
            self._until_slice = self._stride_samples
            fe_us = _us_since(start)
            self.clip_fe_us += fe_us
            self._stage_listener("front_end")
            self._slices += 1
            num_slices = self.config.num_slices
            if self._features.full and (self._slices - num_slices) % self._every == 0:
                scores = self._infer()
                detection = self.recognizer.process(self.time_ms, scores)
                steps.append(Step(self.time_ms, scores, detection, fe_us, self.last_inf_us, _us_since(start),
                                  self.last_output))
        return steps

    def _infer(self) -> np.ndarray:
        start = time.perf_counter_ns()
        output = self.last_output = self.model.predict(self._features.window()[np.newaxis])[0]
        scores = core.scores_from_int8(output, self.model.output.zero_point)
        self.last_inf_us = _us_since(start)
        self._stage_listener("inference")
        return scores

    def classify_window(self) -> np.ndarray:
        """CLIP_END: one inference on the latest window (silence-padded if the clip was short); uint8 scores."""
        return self._infer()

    def window(self) -> np.ndarray:
        """A copy of the current int8 model input, oldest slice first."""
        return self._features.window()
