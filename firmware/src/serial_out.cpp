#include "serial_out.h"

#include <Arduino.h>

#include "model_runner.h"
#include "model_settings.h"

namespace {
// One line at a time: everything is sent from the main loop, never from an
// interrupt, so a single buffer suffices.
char g_line_buffer[KWS_LINE_MAX + 1];
kws_line g_line;
}  // namespace

const char* input_mode_name(InputMode mode) {
  return mode == InputMode::kHost ? "host" : "mic";
}

kws_line* serial_begin(const char* tag) {
  kws_line_begin(&g_line, g_line_buffer, sizeof(g_line_buffer), tag);
  return &g_line;
}

void serial_send(kws_line* line) {
  const size_t length = kws_line_end(line);
  if (length > 0) Serial.write(line->buf, length);
}

void serial_send_err(const char* code, const char* detail, int32_t seq) {
  kws_line* line = serial_begin("ERR");
  kws_line_add_str(line, "code", code);
  kws_line_add_str(line, "detail", detail);
  if (seq >= 0) kws_line_add_int(line, "seq", seq);
  serial_send(line);
}

void serial_send_hello(InputMode mode) {
  kws_line* line = serial_begin("HELLO");
  kws_line_add_int(line, "proto", KWS_PROTOCOL_VERSION);
  kws_line_add_str(line, "fw", KWS_FW_VERSION);
  kws_line_add_str(line, "model", KWS_MODEL_NAME);
  kws_line_add_str(line, "model_id", KWS_MODEL_ID);
  kws_line_add_str_list(line, "labels", model_labels(), KWS_NUM_LABELS);
  kws_line_add_int(line, "sr", KWS_SAMPLE_RATE);
  kws_line_add_int(line, "stride_ms", KWS_FE_STRIDE_MS);
  kws_line_add_uint(line, "clock_hz", SystemCoreClock);
  kws_line_add_str(line, "mode", input_mode_name(mode));
  kws_line_add_str(line, "timing", "dwt");
  serial_send(line);
}
