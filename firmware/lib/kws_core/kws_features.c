#include "kws_features.h"

#include <string.h>

int kws_scale_features(const uint16_t* raw, int8_t* out, size_t n,
                       int32_t multiplier, int32_t shift, int32_t zero_point) {
  int64_t half;
  size_t i;
  if (multiplier < 0 || shift < 0 || shift > 62) return -1;
  /* Both factors are non-negative, so >> is a floor division here. */
  half = shift > 0 ? (int64_t)1 << (shift - 1) : 0;
  for (i = 0; i < n; ++i) {
    const int64_t scaled =
        (((int64_t)raw[i] * multiplier + half) >> shift) + zero_point;
    out[i] = (int8_t)(scaled < -128 ? -128 : (scaled > 127 ? 127 : scaled));
  }
  return 0;
}

int kws_window_init(kws_feature_window* window, int8_t* storage,
                    size_t num_slices, size_t slice_size, int8_t fill) {
  if (storage == NULL || num_slices == 0u || slice_size == 0u) return -1;
  window->data = storage;
  window->num_slices = num_slices;
  window->slice_size = slice_size;
  kws_window_reset(window, fill);
  return 0;
}

void kws_window_reset(kws_feature_window* window, int8_t fill) {
  memset(window->data, fill, window->num_slices * window->slice_size);
  window->next = 0u;
  window->filled = 0u;
}

void kws_window_push(kws_feature_window* window, const int8_t* slice) {
  memcpy(window->data + window->next * window->slice_size, slice,
         window->slice_size);
  window->next = (window->next + 1u) % window->num_slices;
  if (window->filled < window->num_slices) window->filled += 1u;
}

int kws_window_full(const kws_feature_window* window) {
  return window->filled == window->num_slices;
}

void kws_window_copy(const kws_feature_window* window, int8_t* out) {
  /* Slots next..end hold the oldest slices, slots 0..next the newest. */
  const size_t total = window->num_slices * window->slice_size;
  const size_t split = window->next * window->slice_size;
  memcpy(out, window->data + split, total - split);
  memcpy(out + (total - split), window->data, split);
}
