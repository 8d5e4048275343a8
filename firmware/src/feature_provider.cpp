// The TFLM microfrontend as the board's front end (models exported with
// frontend.kind = "microfrontend"); mfcc_feature_provider.cpp is the other.
#include "model_settings.h"
#if !KWS_FE_MLPERF_MFCC
#include "feature_provider.h"

#include <stdlib.h>

#include "kws_features.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"
#include "tensorflow/lite/experimental/microfrontend/lib/pcan_gain_control_util.h"

#ifndef KWS_FE_WINDOW_COEFFICIENTS
#error "model_settings.h has no front-end tables: python -m kws.export --frontend-tables models/<name> writes them"
#endif

namespace {
FrontendState g_frontend;
int8_t g_window_storage[KWS_NUM_SLICES * KWS_SLICE_SIZE];
kws_feature_window g_window;
int8_t g_silent_value;  // a slice of raw zeros, scaled: what reset fills with

static_assert(KWS_SLICE_SIZE == KWS_FE_NUM_CHANNELS,
              "a feature slice is one front-end output");

// The integer tables FrontendPopulateState computes with float arithmetic,
// as the host's microfrontend computed them for the training features
// (kws export reads them from its FrontendState).
const int16_t kWindowCoefficients[] = KWS_FE_WINDOW_COEFFICIENTS;
const int16_t kChannelFrequencyStarts[] = KWS_FE_CHANNEL_FREQUENCY_STARTS;
const int16_t kChannelWeightStarts[] = KWS_FE_CHANNEL_WEIGHT_STARTS;
const int16_t kChannelWidths[] = KWS_FE_CHANNEL_WIDTHS;
const int16_t kFilterbankWeights[] = KWS_FE_FILTERBANK_WEIGHTS;
const int16_t kFilterbankUnweights[] = KWS_FE_FILTERBANK_UNWEIGHTS;
constexpr size_t kChannelEdges = KWS_FE_NUM_CHANNELS + 1;
static_assert(sizeof kWindowCoefficients / sizeof(int16_t) ==
                  KWS_FE_WINDOW_MS * KWS_SAMPLE_RATE / 1000,
              "one window coefficient per sample of the window");
static_assert(sizeof kChannelFrequencyStarts / sizeof(int16_t) ==
                      kChannelEdges &&
                  sizeof kChannelWeightStarts / sizeof(int16_t) ==
                      kChannelEdges &&
                  sizeof kChannelWidths / sizeof(int16_t) == kChannelEdges,
              "the filterbank has one channel edge more than channels");
static_assert(sizeof kFilterbankWeights == sizeof kFilterbankUnweights,
              "a weight and an unweight per filterbank tap");
#if KWS_FE_ENABLE_PCAN
const int16_t kPcanGainLut[] = KWS_FE_PCAN_GAIN_LUT;
static_assert(sizeof kPcanGainLut / sizeof(int16_t) ==
                  kWideDynamicFunctionLUTSize,
              "the PCAN gain curve has kWideDynamicFunctionLUTSize entries");
#endif

// Why the board does not keep the library's own tables: they come from float
// code (window_util.c, filterbank_util.c, noise_reduction_util.c,
// pcan_gain_control_util.c) whose rounding depends on how it is compiled.
// With the mbed core's own -mfloat-abi=softfp (what the Arduino IDE builds,
// and PlatformIO without the soft it appends) GCC contracts the filterbank's
// channel edges, mel_low + mel_spacing * (i + 1), into a VFMA: two weights of
// channel 39 move by one step and features differ from the host's on 26 of
// 480 clips (channels 38-39). A flag such as -ffp-contract=off would fix one
// build system only (the Arduino IDE has no per-project flags); tables from
// the exporter hold in every build, and are the training features' own. The
// state is pointed at them rather than copied into the library's buffers so
// that nothing assumes the board laid the filterbank out as the host did (its
// number of taps comes from float comparisons too); the library's buffers
// are freed. The FFT's twiddles are computed in double precision, which this
// FPU lacks, so every float ABI computes them in the same software (kws m4
// found them equal to the host's); the rest of the state is integer.
// FrontendFreeStateContents must not be called on this state (the firmware
// never frees it).
void use_exported_tables(FrontendState* state) {
  free(state->window.coefficients);
  state->window.coefficients = const_cast<int16_t*>(kWindowCoefficients);

  FilterbankState* bank = &state->filterbank;
  free(bank->channel_frequency_starts);
  free(bank->channel_weight_starts);
  free(bank->channel_widths);
  free(bank->weights);
  free(bank->unweights);
  bank->start_index = KWS_FE_FILTERBANK_START_INDEX;
  bank->end_index = KWS_FE_FILTERBANK_END_INDEX;
  bank->channel_frequency_starts =
      const_cast<int16_t*>(kChannelFrequencyStarts);
  bank->channel_weight_starts = const_cast<int16_t*>(kChannelWeightStarts);
  bank->channel_widths = const_cast<int16_t*>(kChannelWidths);
  bank->weights = const_cast<int16_t*>(kFilterbankWeights);
  bank->unweights = const_cast<int16_t*>(kFilterbankUnweights);

  state->noise_reduction.even_smoothing = KWS_FE_NOISE_EVEN_SMOOTHING_Q14;
  state->noise_reduction.odd_smoothing = KWS_FE_NOISE_ODD_SMOOTHING_Q14;
  state->noise_reduction.min_signal_remaining =
      KWS_FE_NOISE_MIN_SIGNAL_REMAINING_Q14;
#if KWS_FE_ENABLE_PCAN
  free(state->pcan_gain_control.gain_lut);
  state->pcan_gain_control.gain_lut = const_cast<int16_t*>(kPcanGainLut);
#endif
}
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
  use_exported_tables(&g_frontend);
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

bool feature_provider_full() { return kws_window_full(&g_window) != 0; }

void feature_provider_fill(int8_t* input) { kws_window_copy(&g_window, input); }

#endif  // !KWS_FE_MLPERF_MFCC
