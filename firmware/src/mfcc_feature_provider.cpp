// The MLPerf Tiny KWS MFCCs as the board's front end (models exported with
// frontend.kind = "mlperf_mfcc"): kws_core's integer C, the code training
// computed its features with, and the tables kws export wrote from kws.mfcc.
// Per stride only the new frame's mel energies are computed; the window's
// MFCCs (peak normalization over the window, log, DCT) and their int8 only
// when the model runs, since the peak is a property of the whole window.
#include "model_settings.h"
#if KWS_FE_MLPERF_MFCC
#include "feature_provider.h"
#include "kws_mfcc.h"

namespace {
const kws_mfcc_tables kTables = KWS_MFCC_TABLES_INIT;
constexpr size_t kWindowValues = KWS_NUM_SLICES * KWS_SLICE_SIZE;
int32_t g_storage[KWS_MFCC_STORAGE_WORDS(
    KWS_MFCC_WINDOW_LENGTH, KWS_MFCC_FFT_LENGTH, KWS_MFCC_NUM_MEL,
    KWS_NUM_SLICES)];
int32_t g_mfccs[kWindowValues];  // Q16, before the model's quantization
kws_mfcc g_mfcc;

static_assert(KWS_NUM_SLICES == KWS_MFCC_FRAMES,
              "the model's window is the front end's ring of frames");
static_assert(KWS_SLICE_SIZE == KWS_MFCC_NUM_COEFFICIENTS,
              "a feature slice is one frame's coefficients");
static_assert(KWS_FE_STRIDE_SAMPLES == KWS_MFCC_STRIDE,
              "the pipeline's stride is the front end's");
}  // namespace

bool feature_provider_setup() {
  return kws_mfcc_init(&g_mfcc, &kTables, KWS_NUM_SLICES, g_storage,
                       sizeof g_storage / sizeof g_storage[0]) == 0;
}

void feature_provider_reset() { kws_mfcc_reset(&g_mfcc); }

int feature_provider_add(const int16_t* samples, size_t count) {
  return static_cast<int>(kws_mfcc_add(&g_mfcc, samples, count));
}

bool feature_provider_full() { return kws_mfcc_full(&g_mfcc) != 0; }

void feature_provider_fill(int8_t* input) {
  kws_mfcc_window(&g_mfcc, g_mfccs);
  kws_mfcc_quantize(g_mfccs, input, kWindowValues, KWS_FEATURE_MULTIPLIER,
                    KWS_FEATURE_SHIFT, KWS_INPUT_ZERO_POINT);
}

#endif  // KWS_FE_MLPERF_MFCC
