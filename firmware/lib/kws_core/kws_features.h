/* From the TFLM microfrontend's uint16 features to the model's int8 input.
 *
 * Scaling: training computes float features as raw * 10 / 256 (what the
 * micro_speech pipeline does) and quantizes them with the model's input scale
 * and zero point. The exporter folds 10 / (256 * scale) into a fixed-point
 * multiplier and shift (model_settings.h: KWS_FEATURE_MULTIPLIER,
 * KWS_FEATURE_SHIFT), so the device needs no float:
 *   out = clamp(zero_point + ((raw * multiplier + 2^(shift-1)) >> shift),
 *               -128, 127)
 * i.e. the product rounded half up, in 64-bit so nothing overflows.
 *
 * Window: the model sees num_slices feature slices (one per stride), oldest
 * first. Pushing a slice overwrites the oldest in a ring, so a stride costs one
 * slice copy; the whole window is laid out in time order only when the model
 * input is filled.
 */
#ifndef KWS_FEATURES_H_
#define KWS_FEATURES_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0, or -1 if multiplier < 0 or shift is outside 0..62. */
int kws_scale_features(const uint16_t* raw, int8_t* out, size_t n,
                       int32_t multiplier, int32_t shift, int32_t zero_point);

typedef struct {
  int8_t* data; /* caller-owned, num_slices * slice_size */
  size_t num_slices;
  size_t slice_size;
  size_t next;   /* slot the next slice goes to, i.e. the oldest one */
  size_t filled; /* slices pushed since reset, saturating at num_slices */
} kws_feature_window;

/* Returns 0, or -1 for a zero size. The window starts reset to fill. */
int kws_window_init(kws_feature_window* window, int8_t* storage,
                    size_t num_slices, size_t slice_size, int8_t fill);

/* Fills every slice with fill (the int8 value of a silent slice, i.e. the
 * scaled raw 0, which is what a clip padded with silence starts with). */
void kws_window_reset(kws_feature_window* window, int8_t fill);

void kws_window_push(kws_feature_window* window, const int8_t* slice);

/* Nonzero once num_slices slices were pushed since the last reset. */
int kws_window_full(const kws_feature_window* window);

/* Copies the window, oldest slice first, into out (num_slices*slice_size). */
void kws_window_copy(const kws_feature_window* window, int8_t* out);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FEATURES_H_ */
