// The firmware's feature provider on the host: int16 samples on stdin, fed in
// strides as the board's pipeline feeds them; the int8 model input of the
// last window on stdout. tests/test_frontends.py builds it with an exported
// model's model_settings.h and compares its bytes with the host tools'.
#include <cstdio>

#include "feature_provider.h"
#include "model_settings.h"

int main() {
  if (!feature_provider_setup()) return 2;
  int16_t stride[KWS_FE_STRIDE_SAMPLES];
  size_t count;
  while ((count = fread(stride, sizeof stride[0], KWS_FE_STRIDE_SAMPLES,
                        stdin)) > 0) {
    feature_provider_add(stride, count);
  }
  static int8_t input[KWS_NUM_SLICES * KWS_SLICE_SIZE];
  feature_provider_fill(input);
  fwrite(input, 1, sizeof input, stdout);
  return feature_provider_full() ? 0 : 3;
}
