// nano-kws firmware: keyword spotting on the Arduino Nano 33 BLE Sense.
// setup() brings the parts up in dependency order; loop() moves audio from
// the active input through the pipeline and sends the periodic lines.
#include <Arduino.h>

#include "audio_provider.h"
#include "ble_link.h"
#include "feature_provider.h"
#include "hello.h"
#include "host_stream.h"
#include "kws_clock.h"
#include "model_runner.h"
#include "pipeline.h"
#include "responder.h"
#include "serial_out.h"
#include "timing.h"

namespace {
constexpr uint32_t kStatsEveryMs = 5000;
constexpr uint32_t kHelloEveryMs = 10000;

uint32_t g_last_stats_ms = 0;
uint32_t g_last_hello_ms = 0;
uint32_t g_reported_overruns = 0;
bool g_host_connected = false;

void on_input_changed(InputMode mode) {
  pipeline_reset();
#if KWS_BLE
  ble_link_set_info(mode);
#else
  (void)mode;
#endif
}

void on_clip_begin(uint32_t) { pipeline_reset(); }

void on_clip_end(uint32_t clip_id) {
  pipeline_finish_clip(host_stream_ring(), clip_id);
}

const HostStreamHandlers kHandlers = {on_input_changed, on_clip_begin,
                                      on_clip_end};

uint32_t overruns() {
  return kws_ring_dropped(audio_provider_ring()) +
         kws_ring_dropped(host_stream_ring());
}

void send_periodic(uint32_t now_ms) {
  if (kws_elapsed_ms(now_ms, g_last_stats_ms) >= kStatsEveryMs) {
    g_last_stats_ms = now_ms;
    const uint32_t lost = overruns();
    if (lost != g_reported_overruns) {
      serial_send_err("overrun", "audio_samples_lost");
      g_reported_overruns = lost;
    }
    pipeline_send_stats(host_stream_mode(), lost, host_stream_bad_frames());
  }
  if (!host_stream_host_seen() &&
      kws_elapsed_ms(now_ms, g_last_hello_ms) >= kHelloEveryMs) {
    g_last_hello_ms = now_ms;
    serial_send_hello(host_stream_mode());
  }
}
}  // namespace

void setup() {
  Serial.begin(115200);  // USB CDC: the rate is nominal, never waited for
  serial_setup();
  timing_setup();
  responder_setup();
  const char* detail = "";
  if (const char* code = model_runner_setup(&detail)) {
    responder_fail(code, detail);
  }
  if (!feature_provider_setup()) {
    responder_fail("frontend", "setup_failed");
  }
  pipeline_setup();
  host_stream_setup();
#if KWS_BLE
  // Before the microphone starts: BLE.begin() waits for the controller a
  // few times (about 0.1-0.2 s), setup is the place for that.
  if (!ble_link_setup(InputMode::kMic)) serial_send_err("ble", "begin_failed");
#endif
  if (!audio_provider_setup()) responder_fail("pdm", "begin_failed");
  g_last_hello_ms = millis();
  g_last_stats_ms = g_last_hello_ms;
  serial_send_hello(InputMode::kMic);
}

void loop() {
  const uint32_t now_ms = millis();
  const bool connected = serial_host_connected();
  if (g_host_connected && !connected) {  // the host closed the port
    serial_disconnected();
    host_stream_disconnected(kHandlers);
  }
  g_host_connected = connected;
  host_stream_poll(now_ms, kHandlers);
  kws_ring* mic = audio_provider_ring();
  if (host_stream_mode() == InputMode::kHost) {
    kws_ring_skip(mic, kws_ring_available(mic));  // the microphone is ignored
    pipeline_run(host_stream_ring(), !host_stream_clip_open());
  } else if (audio_provider_ready()) {
    pipeline_run(mic, true);
  }
  serial_pump();
#if KWS_BLE
  ble_link_poll();  // after the pipeline step: never inside a timed stage
#endif
  responder_update(now_ms);
  send_periodic(now_ms);
}
