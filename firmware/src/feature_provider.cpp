#include "feature_provider.h"

#include "model_settings.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

namespace {
FrontendState g_frontend;
int8_t g_window_storage[KWS_NUM_SLICES * KWS_SLICE_SIZE];
kws_feature_window g_window;
int8_t g_silent_value;  // a slice of raw zeros, scaled: what reset fills with

static_assert(KWS_SLICE_SIZE == KWS_FE_NUM_CHANNELS,
              "a feature slice is one front-end output");
}  // namespace

bool feature_provider_setup() {
  FrontendConfig config;
  FrontendFillConfigWithDefaults(&config);
  config.window.size_ms = KWS_FE_WINDOW_MS;
  config.window.step_size_ms = KWS_FE_STRIDE_MS;
  config.filterbank.num_channels = KWS_FE_NUM_CHANNELS;
  config.filterbank.lower_band_limit = KWS_FE_LOWER_BAND_HZ;
  config.filterbank.upper_band_limit = KWS_FE_UPPER_BAND_HZ;
  config.noise_reduction.smoothing_bits = KWS_FE_SMOOTHING_BITS;
  config.noise_reduction.even_smoothing = KWS_FE_EVEN_SMOOTHING;
  config.noise_reduction.odd_smoothing = KWS_FE_ODD_SMOOTHING;
  config.noise_reduction.min_signal_remaining = KWS_FE_MIN_SIGNAL_REMAINING;
  config.pcan_gain_control.enable_pcan = KWS_FE_ENABLE_PCAN;
  config.pcan_gain_control.strength = KWS_FE_PCAN_STRENGTH;
  config.pcan_gain_control.offset = KWS_FE_PCAN_OFFSET;
  config.pcan_gain_control.gain_bits = KWS_FE_GAIN_BITS;
  config.log_scale.enable_log = KWS_FE_ENABLE_LOG;
  config.log_scale.scale_shift = KWS_FE_SCALE_SHIFT;
  if (!FrontendPopulateState(&config, &g_frontend, KWS_SAMPLE_RATE)) {
    return false;
  }
  const uint16_t zero = 0;
  kws_scale_features(&zero, &g_silent_value, 1, KWS_FEATURE_MULTIPLIER,
                     KWS_FEATURE_SHIFT, KWS_INPUT_ZERO_POINT);
  kws_window_init(&g_window, g_window_storage, KWS_NUM_SLICES, KWS_SLICE_SIZE,
                  g_silent_value);
  return true;
}

void feature_provider_reset() {
  FrontendReset(&g_frontend);
  kws_window_reset(&g_window, g_silent_value);
}

int feature_provider_add(const int16_t* samples, size_t count) {
  int slices = 0;
  while (count > 0) {
    size_t used = 0;
    const FrontendOutput output =
        FrontendProcessSamples(&g_frontend, samples, count, &used);
    samples += used;
    count -= used;
    if (output.size == KWS_SLICE_SIZE) {
      int8_t slice[KWS_SLICE_SIZE];
      kws_scale_features(output.values, slice, KWS_SLICE_SIZE,
                         KWS_FEATURE_MULTIPLIER, KWS_FEATURE_SHIFT,
                         KWS_INPUT_ZERO_POINT);
      kws_window_push(&g_window, slice);
      ++slices;
    }
  }
  return slices;
}

const kws_feature_window* feature_provider_window() { return &g_window; }
