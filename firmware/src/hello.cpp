#include "hello.h"

#include <Arduino.h>

#include "model_runner.h"
#include "model_settings.h"
#include "pipeline.h"

namespace {
// HELLO's fields, the one list for every transport that carries the line.
void add_fields(kws_line* line, InputMode mode) {
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
  pipeline_describe_recognizer(line);
}
}  // namespace

void serial_send_hello(InputMode mode) {
  kws_line* line = serial_begin("HELLO");
  add_fields(line, mode);
  serial_send(line);
}

#if KWS_BLE
size_t hello_format(InputMode mode, char* buf, size_t cap) {
  kws_line line;
  kws_line_begin(&line, buf, cap, "HELLO");
  add_fields(&line, mode);
  return kws_line_end(&line);
}
#endif
