#include "responder.h"

#include <Arduino.h>

#include "ble_link.h"
#include "kws_core.h"
#include "model_runner.h"
#include "model_settings.h"

namespace {
constexpr uint32_t kLedOnMs = 500;

// The Nano 33 BLE's RGB LED (pins LEDR, LEDG, LEDB) is common-anode: a pin
// driven LOW lights its colour.
struct Colour {
  bool r, g, b;
};
// Label i gets colour i modulo the table. Red alone is not in it: red
// blinking means setup failed (responder_fail).
constexpr Colour kColours[] = {{false, true, false}, {false, false, true},
                               {true, true, false},  {true, false, true},
                               {false, true, true},  {true, true, true}};

bool g_led_on = false;
uint32_t g_led_since_ms = 0;

void set_led(Colour colour) {
  digitalWrite(LEDR, colour.r ? LOW : HIGH);
  digitalWrite(LEDG, colour.g ? LOW : HIGH);
  digitalWrite(LEDB, colour.b ? LOW : HIGH);
}

void add_timing(kws_line* line, const StepTiming& timing) {
  kws_line_add_uint(line, "fe_us", timing.fe_us);
  kws_line_add_uint(line, "inf_us", timing.inf_us);
  kws_line_add_uint(line, "step_us", timing.step_us);
}
}  // namespace

void responder_setup() {
  pinMode(LEDR, OUTPUT);
  pinMode(LEDG, OUTPUT);
  pinMode(LEDB, OUTPUT);
  set_led({false, false, false});
}

void responder_detection(uint32_t t_ms, int label_index, uint8_t score,
                         const StepTiming& timing) {
  kws_line* line = serial_begin("DET");
  kws_line_add_uint(line, "t_ms", t_ms);
  kws_line_add_str(line, "label", model_labels()[label_index]);
  kws_line_add_int(line, "idx", label_index);
  kws_line_add_int(line, "score", score);
  add_timing(line, timing);
  serial_send(line);
#if KWS_BLE
  ble_link_detection(static_cast<uint8_t>(label_index), score, t_ms, timing);
#endif

  constexpr int kNumColours = sizeof(kColours) / sizeof(kColours[0]);
  set_led(kColours[label_index % kNumColours]);
  g_led_on = true;
  // Later than the loop's now_ms (the inference ran in between):
  // responder_update measures with kws_elapsed_ms, which reads that as 0.
  g_led_since_ms = millis();
}

void responder_result(uint32_t clip_id, const uint8_t* scores,
                      const StepTiming& timing) {
  int top = 0;
  for (int i = 1; i < KWS_NUM_LABELS; ++i) {
    if (scores[i] > scores[top]) top = i;
  }
  kws_line* line = serial_begin("RESULT");
  kws_line_add_uint(line, "clip", clip_id);
  kws_line_add_str(line, "label", model_labels()[top]);
  kws_line_add_int(line, "idx", top);
  kws_line_add_int(line, "score", scores[top]);
  kws_line_add_u8_list(line, "scores", scores, KWS_NUM_LABELS);
  add_timing(line, timing);
  serial_send(line);
}

void responder_update(uint32_t now_ms) {
  if (g_led_on && kws_elapsed_ms(now_ms, g_led_since_ms) >= kLedOnMs) {
    set_led({false, false, false});
    g_led_on = false;
  }
}

void responder_fail(const char* code, const char* detail) {
  for (uint32_t tick = 0;; ++tick) {
    if (tick % 8 == 0) serial_send_err(code, detail);
    serial_pump();
    set_led({tick % 2 == 0, false, false});
    delay(250);
  }
}
