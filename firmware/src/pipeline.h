// The per-stride pipeline: audio -> front end -> feature window -> model ->
// recognizer, the same for microphone and host-streamed audio.
#ifndef NANO_KWS_PIPELINE_H_
#define NANO_KWS_PIPELINE_H_

#include <stdint.h>

#include "kws_ring.h"
#include "serial_out.h"

// What DET and RESULT report about the step that produced them.
struct StepTiming {
  uint32_t fe_us;    // front end (last stride; whole clip for RESULT)
  uint32_t inf_us;   // the inference
  uint32_t step_us;  // the whole step, front end to recognizer
};

void pipeline_setup();

// The recognizer setting in HELLO: avg_ms, thresholds (per label, output
// order), suppress_ms, min_count, calibrated (1: chosen by kws calibrate).
void pipeline_describe_recognizer(kws_line* line);

// Starts over: front end, feature window, recognizer and the audio clock
// (CLIP_BEGIN, and every change of input).
void pipeline_reset();

// Runs every whole stride waiting in the ring through the front end, then,
// if recognize, one inference if KWS_INFERENCE_EVERY_STRIDES strides passed:
// when the loop fell behind, the backlog is featurized and only the newest
// window is scored. Without recognize (a host-streamed clip, classified once
// by pipeline_finish_clip) the front end alone runs: no DET, no LED.
void pipeline_run(kws_ring* ring, bool recognize);

// CLIP_END: runs all remaining audio (also a partial stride) through the front
// end and one inference on the window, and sends RESULT.
void pipeline_finish_clip(kws_ring* ring, uint32_t clip_id);

// STATS for the period since the last call, then starts a new period.
void pipeline_send_stats(InputMode mode, uint32_t overruns,
                         uint32_t bad_frames);

#endif  // NANO_KWS_PIPELINE_H_
