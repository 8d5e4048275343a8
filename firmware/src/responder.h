// What the user sees: DET and RESULT lines, and the RGB LED lit in a colour
// per keyword for a moment after each detection.
#ifndef NANO_KWS_RESPONDER_H_
#define NANO_KWS_RESPONDER_H_

#include <stdint.h>

#include "pipeline.h"

void responder_setup();

// A keyword was detected at audio time t_ms (kws_recognizer).
void responder_detection(uint32_t t_ms, int label_index, uint8_t score,
                         const StepTiming& timing);

// The single inference at the end of a host-streamed clip.
void responder_result(uint32_t clip_id, const uint8_t* scores,
                      const StepTiming& timing);

// Turns the LED off once it has been on long enough.
void responder_update(uint32_t now_ms);

// Setup failed: repeats ERR every 2 s and blinks red (no keyword's colour),
// never returns (running a model that failed its checks would only produce
// wrong detections).
[[noreturn]] void responder_fail(const char* code, const char* detail);

#endif  // NANO_KWS_RESPONDER_H_
