#include "pipeline.h"

#include <Arduino.h>

#include "ble_link.h"
#include "feature_provider.h"
#include "kws_core.h"
#include "marker.h"
#include "model_runner.h"
#include "model_settings.h"
#include "responder.h"
#include "timing.h"

namespace {
kws_recognizer g_recognizer;
// Audio time: samples through the front end since the last reset. The
// recognizer runs on it rather than millis(), so a streamed clip is scored
// the same however fast the host sends it.
uint64_t g_samples = 0;
uint32_t g_strides_since_inference = 0;
uint32_t g_last_fe_us = 0;
uint32_t g_clip_fe_us = 0;
uint32_t g_steps = 0;
TimingStat g_fe_stat;
TimingStat g_inf_stat;

uint32_t audio_time_ms() {
  return static_cast<uint32_t>(g_samples * 1000u / KWS_SAMPLE_RATE);
}

void featurize(const int16_t* samples, size_t count) {
  MarkerScope marker(kMarkerFrontEnd);
  const uint32_t start = timing_cycles();
  feature_provider_add(samples, count);
  g_last_fe_us = timing_us_since(start);
  g_clip_fe_us += g_last_fe_us;
  g_fe_stat.add(g_last_fe_us);
  g_samples += count;
}

// Scores the current window; false (and ERR) if TFLM fails.
bool infer(uint8_t* scores, uint32_t* inf_us) {
  MarkerScope marker(kMarkerInference);
  const uint32_t start = timing_cycles();
  feature_provider_fill(model_runner_input());
  const bool ok = model_runner_invoke();
  *inf_us = timing_us_since(start);
  if (!ok) {
    serial_send_err("invoke", "tflm_invoke_failed");
    return false;
  }
  g_inf_stat.add(*inf_us);
  kws_scores_from_int8(model_runner_output(), KWS_NUM_LABELS,
                       KWS_OUTPUT_ZERO_POINT, scores);
  return true;
}
}  // namespace

void pipeline_setup() {
  marker_setup();
  static const uint8_t kReportable[KWS_NUM_LABELS] = KWS_LABEL_REPORTABLE;
  kws_recognizer_config config;
  config.average_window_ms = KWS_RECOGNIZER_AVERAGE_WINDOW_MS;
  config.detection_threshold = KWS_RECOGNIZER_THRESHOLD;
  config.suppression_ms = KWS_RECOGNIZER_SUPPRESSION_MS;
  config.minimum_count = KWS_RECOGNIZER_MINIMUM_COUNT;
  if (kws_recognizer_init(&g_recognizer, &config, KWS_NUM_LABELS,
                          kReportable) != KWS_REC_OK) {
    responder_fail("config", "recognizer_settings_rejected");
  }
#ifdef KWS_RECOGNIZER_THRESHOLDS  // one per label; older headers: one for all
  static const uint8_t kThresholds[] = KWS_RECOGNIZER_THRESHOLDS;
  static_assert(sizeof(kThresholds) == KWS_NUM_LABELS,
                "KWS_RECOGNIZER_THRESHOLDS needs one value per label");
  kws_recognizer_set_thresholds(&g_recognizer, kThresholds);
#endif
}

void pipeline_describe_recognizer(kws_line* line) {
  kws_line_add_uint(line, "avg_ms", g_recognizer.config.average_window_ms);
  kws_line_add_u8_list(line, "thresholds", g_recognizer.thresholds,
                       KWS_NUM_LABELS);
  kws_line_add_uint(line, "suppress_ms", g_recognizer.config.suppression_ms);
  kws_line_add_uint(line, "min_count", g_recognizer.config.minimum_count);
#ifdef KWS_RECOGNIZER_CALIBRATED
  kws_line_add_int(line, "calibrated", KWS_RECOGNIZER_CALIBRATED);
#else
  kws_line_add_int(line, "calibrated", 0);
#endif
}

void pipeline_reset() {
  feature_provider_reset();
  kws_recognizer_reset(&g_recognizer);
  g_samples = 0;
  g_strides_since_inference = 0;
  g_clip_fe_us = 0;
}

void pipeline_run(kws_ring* ring, bool recognize) {
  const uint32_t step_start = timing_cycles();
  int16_t stride[KWS_FE_STRIDE_SAMPLES];
  while (kws_ring_available(ring) >= KWS_FE_STRIDE_SAMPLES) {
    kws_ring_read(ring, stride, KWS_FE_STRIDE_SAMPLES);
    featurize(stride, KWS_FE_STRIDE_SAMPLES);
    ++g_strides_since_inference;
    ++g_steps;
  }
  if (!recognize ||
      g_strides_since_inference < KWS_INFERENCE_EVERY_STRIDES ||
      !feature_provider_full()) {
    return;
  }
  g_strides_since_inference = 0;

  uint8_t scores[KWS_NUM_LABELS];
  StepTiming timing = {g_last_fe_us, 0, 0};
  if (!infer(scores, &timing.inf_us)) return;
  kws_recognition result;
  const uint32_t now_ms = audio_time_ms();
  if (kws_recognizer_process(&g_recognizer, now_ms, scores, &result) ==
          KWS_REC_OK &&
      result.detected) {
    timing.step_us = timing_us_since(step_start);
    responder_detection(now_ms, result.top_index, result.top_score, timing);
  }
}

void pipeline_finish_clip(kws_ring* ring, uint32_t clip_id) {
  const uint32_t step_start = timing_cycles();
  int16_t chunk[KWS_FE_STRIDE_SAMPLES];
  size_t count;
  while ((count = kws_ring_read(ring, chunk, KWS_FE_STRIDE_SAMPLES)) > 0) {
    featurize(chunk, count);
  }
  uint8_t scores[KWS_NUM_LABELS];
  StepTiming timing = {g_clip_fe_us, 0, 0};
  if (!infer(scores, &timing.inf_us)) return;
  timing.step_us = timing_us_since(step_start);
  responder_result(clip_id, scores, timing);
}

void pipeline_send_stats(InputMode mode, uint32_t overruns,
                         uint32_t bad_frames) {
  kws_line* line = serial_begin("STATS");
  const uint32_t t_ms = millis();
  kws_line_add_uint(line, "t_ms", t_ms);
  kws_line_add_uint(line, "steps", g_steps);
  kws_line_add_uint(line, "fe_us_avg", g_fe_stat.average_us());
  kws_line_add_uint(line, "fe_us_max", g_fe_stat.max_us);
  kws_line_add_uint(line, "inf_us_avg", g_inf_stat.average_us());
  kws_line_add_uint(line, "inf_us_max", g_inf_stat.max_us);
  kws_line_add_uint(line, "overruns", overruns);
  kws_line_add_uint(line, "bad_frames", bad_frames);
  const uint32_t lines_dropped = serial_lines_dropped();
  kws_line_add_uint(line, "lines_dropped", lines_dropped);
  const uint32_t free_ram = timing_free_ram();
  kws_line_add_uint(line, "free_ram", free_ram);
  kws_line_add_str(line, "mode", input_mode_name(mode));
  serial_send(line);
#if KWS_BLE
  // The same figures (read once, before this STATS line could be dropped).
  kws_ble_stats stats = {};
  stats.mode = mode == InputMode::kHost ? 1 : 0;
  stats.t_ms = t_ms;
  stats.steps = g_steps;
  stats.fe_us_avg = g_fe_stat.average_us();
  stats.fe_us_max = g_fe_stat.max_us;
  stats.inf_us_avg = g_inf_stat.average_us();
  stats.inf_us_max = g_inf_stat.max_us;
  stats.overruns = overruns;
  stats.bad_frames = bad_frames;
  stats.lines_dropped = lines_dropped;
  stats.free_ram = free_ram;
  ble_link_set_stats(&stats);
#endif
  g_fe_stat.clear();
  g_inf_stat.clear();
  g_steps = 0;
}
