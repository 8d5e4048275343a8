// The board-side neighbours of firmware/src/pipeline.cpp (responder, serial
// lines, timing), for the bare-metal check image: the stream mode runs the
// firmware's own pipeline_run stride by stride, and needs from these only the
// detections it reports. Timing reads the instruction counter (no cycles
// under QEMU); nothing here is on the path from audio to detection.
#include <stdlib.h>

#include "Arduino.h"
#include "instruction_counter.h"
#include "pipeline.h"
#include "pipeline_stubs.h"
#include "responder.h"
#include "serial_out.h"
#include "timing.h"

namespace {
Detection g_detections[kMaxDetections];
uint32_t g_detection_count = 0;
char g_line_buffer[256];
kws_line g_line;
}  // namespace

const Detection* detections_taken(uint32_t* count) {
  *count = g_detection_count;
  g_detection_count = 0;
  return g_detections;
}

void responder_detection(uint32_t t_ms, int label_index, uint8_t score,
                         const StepTiming&) {
  if (g_detection_count < kMaxDetections) {
    g_detections[g_detection_count] = {t_ms, label_index, score};
  }
  ++g_detection_count;
}

void responder_result(uint32_t, const uint8_t*, const StepTiming&) {}

void responder_fail(const char*, const char*) { abort(); }

uint32_t millis() { return instruction_counter_now() / 64000u; }

uint32_t timing_cycles() { return instruction_counter_now(); }

uint32_t timing_us_since(uint32_t start_cycles) {
  return instruction_counter_since(start_cycles) / 64u;
}

uint32_t timing_free_ram() { return 0; }

const char* input_mode_name(InputMode) { return "host"; }

kws_line* serial_begin(const char* tag) {
  kws_line_begin(&g_line, g_line_buffer, sizeof g_line_buffer, tag);
  return &g_line;
}

void serial_send(kws_line*) {}

uint32_t serial_lines_dropped() { return 0; }

void serial_send_err(const char*, const char*, int32_t) {}
