/* The MLPerf Tiny KWS MFCC front end in integer arithmetic.
 *
 * Reference (TensorFlow, kws.teacher.mlperf_mfcc), per 1 s clip: x / signed
 * max of the clip; STFT with a 480-sample periodic Hann window, step 320, FFT
 * 512; magnitude |X|; 40 HTK mel bands over 20-4000 Hz
 * (linear_to_mel_weight_matrix, DC bin ignored); log(mel + 1e-6); DCT-II times
 * sqrt(2/40) (mfccs_from_log_mel_spectrograms), first 10 coefficients:
 * (49, 10).
 *
 * No float anywhere: the board builds with -mfloat-abi=soft, where every float
 * operation is a library call, and float code can round differently in soft
 * and softfp builds (FMA contraction); integer code gives the same bits on
 * every compiler and target, so the host (training, through ctypes), QEMU and
 * the board agree byte for byte. Every constant comes precomputed from
 * host/kws/frontends/mfcc.py (numpy float64, rounded to integers) in kws_mfcc_tables,
 * so the C has no parameters of its own beyond the sizes in that struct.
 *
 * Streaming, as the board runs it: kws_mfcc_add keeps a window_length-sample
 * frame buffer; the first frame completes after window_length samples, then
 * one every stride samples. Each frame stores, in a ring of num_frames slots,
 * its mel magnitudes (uint32 with a per-frame binary exponent) and its signed
 * sample maximum. Peak normalization happens in kws_mfcc_window, over the
 * frames in the window: the STFT and mel are linear, so
 *   log(mel(x / peak) + eps) = log(mel(x) + eps * peak) - log(peak),
 * with peak the largest stored frame maximum, clamped to >= 1 LSB.
 *
 * Differences from the reference, by design:
 * - The peak is taken over the samples the window's frames cover: 49 frames
 *   cover samples [0, 15840) of a 16,000-sample clip, TF takes all 16,000. A
 *   clip whose maximum lies in its last 160 samples is normalized differently.
 * - A window whose maximum is <= 0 (digital silence, a clip below zero
 *   throughout) uses peak = 1 LSB, i.e. the samples unscaled in int16 units.
 *   kws.teacher.mlperf_mfcc leaves such a clip unscaled, which for int16 input
 *   is the same thing; the benchmark's formula would divide by zero or flip it.
 * - Before num_frames frames have been computed since reset, the missing
 *   (oldest) frames are all-zero frames: mel 0 and maximum 0, what a stream
 *   that began with silence gives. Frames straddling the start of the stream
 *   are not computed.
 *
 * Output: KWS_MFCC_Q fractional bits (Q16: value * 65536, int32), oldest frame
 * first, num_coefficients per frame. kws_mfcc_quantize maps that to a model's
 * int8 input.
 */
#ifndef KWS_MFCC_H_
#define KWS_MFCC_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_MFCC_Q 16           /* output fractional bits */
#define KWS_MFCC_MAX_MEL 64     /* accumulators live on the stack */
#define KWS_MFCC_MAX_FFT 4096   /* largest fft_length */
#define KWS_MFCC_LOG_OFFSET_Q 50 /* log_offset is eps * 2^50 */

/* Constant tables and their sizes, all from host/kws/frontends/mfcc.py. Q formats:
 * window Q30, twiddles Q30, mel weights Q15, DCT Q30, log2 table Q30. */
typedef struct {
  uint16_t window_length; /* samples per frame, <= fft_length */
  uint16_t stride;        /* samples between frames, 1..window_length */
  uint16_t fft_length;    /* power of two, 8..KWS_MFCC_MAX_FFT */
  uint16_t first_bin;     /* first FFT bin with a mel weight (>= 1) */
  uint16_t num_bins;      /* bins first_bin .. first_bin + num_bins - 1 */
  uint8_t num_mel;        /* 1..KWS_MFCC_MAX_MEL */
  uint8_t num_coefficients; /* 1..num_mel */
  /* Windowed samples are (x << g) * window >> (input_shift + 15), g the frame's
   * headroom; mel sums are >> mel_shift: chosen by mfcc.py so that nothing
   * overflows at full scale (see kws_mfcc.c). */
  uint8_t input_shift;
  uint8_t mel_shift;
  uint8_t log2_bits;      /* log2_table has 2^log2_bits + 1 entries, 1..15 */
  uint32_t log_offset;    /* eps (1e-6) * 2^KWS_MFCC_LOG_OFFSET_Q */
  /* periodic Hann, window_length values */
  const int32_t* window;
  /* cos, sin of 2 pi k / fft_length for k < fft_length / 2, interleaved */
  const int32_t* twiddle;
  /* bin first_bin + i adds mel_weight[2i] to band mel_band[i] - 1 (its
   * falling slope) and mel_weight[2i+1] to band mel_band[i] (its rising
   * slope); mel_band[i] is 0..num_mel, a band outside 0..num_mel-1 has
   * weight 0 */
  const uint8_t* mel_band;
  const uint16_t* mel_weight;
  /* num_coefficients x ceil(num_mel / 2): sqrt(2/num_mel) cos(pi k (2j+1) /
   * (2 num_mel)) * ln 2 (the logs are computed in base 2); column j also
   * serves band num_mel-1-j, with the sign (-1)^k (DCT-II symmetry) */
  const int32_t* dct;
  /* log2(1 + i / 2^log2_bits), i = 0 .. 2^log2_bits */
  const int32_t* log2_table;
} kws_mfcc_tables;

/* Caller-owned storage, in int32 words: frame buffer, FFT buffer and the
 * ring (mel, maximum and exponent per frame); 12,200 bytes for MLPerf's
 * (480, 512, 40, 49). Samples are kept as int32 too, so that the storage is
 * never accessed as a type other than its own (strict aliasing). */
#define KWS_MFCC_STORAGE_WORDS(window_length, fft_length, num_mel, num_frames) \
  ((size_t)(window_length) + (size_t)(fft_length) +                           \
   (size_t)(num_frames) * ((size_t)(num_mel) + 2u))

typedef struct {
  const kws_mfcc_tables* tables;
  int32_t* frame;     /* window_length samples being collected */
  int32_t* fft;       /* fft_length / 2 complex values, re/im interleaved */
  uint32_t* mel;      /* ring: num_frames x num_mel */
  int32_t* peak;      /* ring: signed maximum of each frame's samples */
  int32_t* exponent;  /* ring: frame mel = mel[] / 2^exponent int16 units */
  size_t num_frames;
  size_t frame_fill;  /* samples in frame */
  size_t next;        /* ring slot of the next frame, i.e. the oldest one */
  size_t filled;      /* frames since reset, saturating at num_frames */
} kws_mfcc;

/* Returns 0, or -1 if the tables are inconsistent or out of the supported
 * range, num_frames is 0 or storage_words is below KWS_MFCC_STORAGE_WORDS.
 * The state starts reset. */
int kws_mfcc_init(kws_mfcc* state, const kws_mfcc_tables* tables,
                  size_t num_frames, int32_t* storage, size_t storage_words);

/* Forgets every sample and frame (the ring holds all-zero frames). */
void kws_mfcc_reset(kws_mfcc* state);

/* Feeds n samples; returns how many frames they completed. */
size_t kws_mfcc_add(kws_mfcc* state, const int16_t* samples, size_t n);

/* Nonzero once num_frames frames were computed since the last reset. */
int kws_mfcc_full(const kws_mfcc* state);

/* The MFCCs of the last num_frames frames, oldest first, normalized by their
 * peak: num_frames x num_coefficients values in Q KWS_MFCC_Q. */
void kws_mfcc_window(const kws_mfcc* state, int32_t* out);

/* MFCCs (Q KWS_MFCC_Q) -> int8 model input:
 *   out = clamp(zero_point + floor((q * multiplier + 2^(shift-1)) / 2^shift),
 *               -128, 127)
 * i.e. q * multiplier / 2^shift rounded half up, in 64 bits. Returns 0, or -1
 * if multiplier < 0 or shift is outside 0..62. */
int kws_mfcc_quantize(const int32_t* q, int8_t* out, size_t n,
                      int32_t multiplier, int32_t shift, int32_t zero_point);

#ifdef __cplusplus
}
#endif

#endif /* KWS_MFCC_H_ */
