#include "kws_mfcc.h"

#include <string.h>

/* Headroom, for full-scale input (the bounds mfcc.py checks when it picks the
 * shifts; MLPerf's values in brackets):
 *
 * Each frame is scaled up by its headroom g, the largest shift with
 * max|x| << g <= 32768, so quiet frames keep their precision. A windowed
 * sample d = (x << g) * w_q30 >> (input_shift + 15) is then at most 2^15 *
 * 2^15 >> input_shift [2^22], and S = sum |d| <= 2^(15 - input_shift) *
 * sum(w) [240 * 2^22 = 1.007e9] stays below 2^30.
 *
 * FFT: every value of a radix-2 FFT, in every stage, is a partial DFT of a
 * subset of the inputs, so its modulus, and each component, is at most S. The
 * butterflies' rounding adds at most about 1 per stage: int32 holds S with a
 * factor 2 to spare. Products with Q30 twiddles are < 2^31 * 2^30 = 2^61 in
 * int64.
 *
 * Real FFT: X[k] = E[k] + W^k O[k] from Z = FFT(d_even + i d_odd); the code
 * computes 2X (no halving, so no lost bit) in int64: |2X[k]| <= 2S < 2^31,
 * |2X|^2 < 2^62.
 *
 * Mel: sum_k weight_q15 * |2X[k]| < W * 2^15 * 2^31 in uint64, W the largest
 * sum of one band's weights [3.3]; >> mel_shift [17] it fits uint32 (mfcc.py
 * checks; a frame that would not is saturated, never wrapped).
 *
 * The stored mel is therefore mel(int16 units) * 2^e with
 * e = 15 (window product) + 1 (2X) + 15 (weights) + g - input_shift -
 * mel_shift. */

#define TWIDDLE_Q 30
#define LOG2_Q 24   /* log2 values: |log2| < 64, so Q24 fits int32 */
#define TABLE_Q 30  /* log2 table and DCT */

/* floor(v / 2^s) for |v| < 2^62 without shifting a negative number (whose
 * result C leaves to the implementation): bias it positive first. */
#define BIAS ((uint64_t)1 << 62)
static int64_t floor_shift(int64_t v, unsigned s) {
  return (int64_t)(((uint64_t)v + BIAS) >> s) - (int64_t)(BIAS >> s);
}

static int64_t round_shift(int64_t v, unsigned s) {
  return floor_shift(v + ((int64_t)1 << (s - 1u)), s);
}

static unsigned clz32(uint32_t v) {
#if defined(__GNUC__)
  return v ? (unsigned)__builtin_clz(v) : 32u;
#else
  unsigned n = 0u;
  if (v == 0u) return 32u;
  while (!(v & 0x80000000u)) {
    v <<= 1;
    ++n;
  }
  return n;
#endif
}

static unsigned clz64(uint64_t v) {
  const uint32_t high = (uint32_t)(v >> 32);
  return high ? clz32(high) : 32u + clz32((uint32_t)v);
}

/* sqrt(v) rounded to nearest, for v < 2^32: Newton's method from above
 * (x0 = 2^ceil(bits/2) >= sqrt(v)) stops at floor(sqrt(v)); the M4 divides
 * in one instruction, so this is 5-6 short iterations, not 16 bit steps. */
static uint32_t isqrt32(uint32_t v) {
  uint32_t x, y;
  if (v == 0u) return 0u;
  x = 1u << ((33u - clz32(v)) / 2u);
  for (;;) {
    y = (x + v / x) >> 1;
    if (y >= x) break;
    x = y;
  }
  return v - x * x > x ? x + 1u : x; /* v - x^2 > x: round up */
}

/* sqrt(v) for v < 2^64 to 16 significant bits (relative error < 2^-16, i.e.
 * 1.5e-5 in the log): v is cut to its top 31 or 32 bits (an even shift). */
static uint32_t isqrt64(uint64_t v) {
  const unsigned bits = 64u - clz64(v);
  const unsigned half = bits > 32u ? (bits - 31u) / 2u : 0u;
  return isqrt32((uint32_t)(v >> (2u * half))) << half;
}

/* log2(v) in Q24 for v > 0: the integer part from the leading bit, the
 * fraction from the table, linearly interpolated (error < 3e-6 with 256
 * entries). The leading 32 bits are enough: index and a 16-bit fraction take
 * log2_bits + 16 <= 32 of them. */
static int32_t log2_q24(const kws_mfcc_tables* t, uint64_t v) {
  const uint32_t high = (uint32_t)(v >> 32), low = (uint32_t)v;
  const unsigned bits = t->log2_bits;
  unsigned top;
  uint32_t m, index, frac, step;
  int32_t base;
  if (high != 0u) {
    const unsigned lz = clz32(high);
    top = 63u - lz;
    m = lz ? (high << lz) | (low >> (32u - lz)) : high;
  } else {
    const unsigned lz = clz32(low);
    top = 31u - lz;
    m = low << lz;
  }
  /* m: leading 1 at bit 31 */
  index = (m >> (31u - bits)) & ((1u << bits) - 1u);
  frac = (m >> (15u - bits)) & 0xFFFFu;
  base = t->log2_table[index];
  /* the table rises, so the step is non-negative */
  step = (uint32_t)(t->log2_table[index + 1u] - base);
  m = (uint32_t)base + (uint32_t)(((uint64_t)step * frac) >> 16);
  return (int32_t)(top << LOG2_Q) +
         (int32_t)((m + (1u << (TABLE_Q - LOG2_Q - 1))) >> (TABLE_Q - LOG2_Q));
}

int kws_mfcc_init(kws_mfcc* state, const kws_mfcc_tables* tables,
                  size_t num_frames, int32_t* storage, size_t storage_words) {
  const kws_mfcc_tables* t = tables;
  size_t i, words;
  if (state == NULL || t == NULL || storage == NULL || num_frames == 0u) {
    return -1;
  }
  if (t->window == NULL || t->twiddle == NULL || t->mel_band == NULL ||
      t->mel_weight == NULL || t->dct == NULL || t->log2_table == NULL) {
    return -1;
  }
  if (t->fft_length < 8u || t->fft_length > KWS_MFCC_MAX_FFT ||
      (t->fft_length & (t->fft_length - 1u)) != 0u ||
      t->window_length == 0u || t->window_length > t->fft_length ||
      t->stride == 0u || t->stride > t->window_length || t->num_mel == 0u ||
      t->num_mel > KWS_MFCC_MAX_MEL || t->num_coefficients == 0u ||
      t->num_coefficients > t->num_mel || t->first_bin == 0u ||
      t->num_bins == 0u ||
      (size_t)t->first_bin + t->num_bins - 1u > t->fft_length / 2u ||
      t->log2_bits == 0u || t->log2_bits > 15u || t->input_shift > 30u ||
      t->mel_shift == 0u || t->mel_shift > 40u || t->log_offset == 0u) {
    return -1;
  }
  for (i = 0; i < t->num_bins; ++i) {
    if (t->mel_band[i] > t->num_mel) return -1;
  }
  words = KWS_MFCC_STORAGE_WORDS(t->window_length, t->fft_length, t->num_mel,
                                 num_frames);
  if (storage_words < words) return -1;
  state->tables = t;
  state->num_frames = num_frames;
  state->frame = storage;
  state->fft = state->frame + t->window_length;
  state->mel = (uint32_t*)(state->fft + t->fft_length);
  state->peak = (int32_t*)(state->mel + num_frames * t->num_mel);
  state->exponent = state->peak + num_frames;
  kws_mfcc_reset(state);
  return 0;
}

void kws_mfcc_reset(kws_mfcc* state) {
  const size_t n = state->num_frames;
  memset(state->mel, 0, n * state->tables->num_mel * sizeof(uint32_t));
  memset(state->peak, 0, n * sizeof(int32_t));
  memset(state->exponent, 0, n * sizeof(int32_t));
  state->frame_fill = 0u;
  state->next = 0u;
  state->filled = 0u;
}

int kws_mfcc_full(const kws_mfcc* state) {
  return state->filled == state->num_frames;
}

/* (x << g) * w >> (shift + 15), rounded: |x << g| <= 2^15 and w <= 2^30
 * (Q30: a Q15 window's rounding would leave a leakage floor 96 dB below the
 * peak, which pure tones reach), so the product is within +-2^45. Rounding,
 * not flooring: a floor's bias of -1/2 is a DC offset that leaks into bands
 * that hold almost nothing. */
static int32_t windowed(int32_t x, unsigned g, int32_t w, unsigned shift) {
  return (int32_t)round_shift((int64_t)(x * (1 << g)) * w, shift + 15u);
}

/* Windows the frame into the complex buffer in bit-reversed order
 * (z_n = d_2n + i d_2n+1, zero beyond the window) and returns the frame's
 * headroom g. */
static unsigned load_frame(kws_mfcc* state, int32_t* peak) {
  const kws_mfcc_tables* t = state->tables;
  const int32_t* x = state->frame;
  const size_t half = t->fft_length / 2u, length = t->window_length;
  const unsigned shift = t->input_shift;
  int32_t* z = state->fft;
  int32_t top = x[0], magnitude = 0;
  unsigned g = 0u;
  size_t n, rev = 0u;
  for (n = 0; n < length; ++n) {
    const int32_t a = x[n] < 0 ? -x[n] : x[n];
    if (a > magnitude) magnitude = a;
    if (x[n] > top) top = x[n];
  }
  *peak = top;
  while (g < 15u && (magnitude << (g + 1u)) <= 32768) ++g;
  for (n = 0; n < half; ++n) {
    const size_t i = 2u * n;
    const int32_t even = i < length ? windowed(x[i], g, t->window[i], shift) : 0;
    const int32_t odd =
        i + 1u < length ? windowed(x[i + 1u], g, t->window[i + 1u], shift) : 0;
    size_t bit = half >> 1;
    z[2u * rev] = even;
    z[2u * rev + 1u] = odd;
    /* reversed increment */
    while (rev & bit) {
      rev ^= bit;
      bit >>= 1;
    }
    rev |= bit;
  }
  return g;
}

/* In-place radix-2 decimation-in-time FFT of fft_length / 2 points, input in
 * bit-reversed order. Twiddles of the half-size FFT are every second one of
 * the table (W_{N/2}^j = W_N^{2j}). W = 1 and W = -i need no multiply and give
 * the same bits as the general butterfly would. */
static void fft(kws_mfcc* state) {
  const int32_t* tw = state->tables->twiddle;
  const size_t n = state->tables->fft_length / 2u;
  int32_t* const z = state->fft;
  int32_t* const end = z + 2u * n;
  size_t h, j;
  for (h = 1u; h < n; h <<= 1) {
    const size_t span = 2u * h, jump = 4u * h; /* in int32 */
    const size_t step = 2u * (n / (2u * h));   /* in table entries */
    int32_t* a;
    for (a = z; a < end; a += jump) { /* j = 0: W = 1 */
      int32_t* b = a + span;
      const int32_t br = b[0], bi = b[1];
      b[0] = a[0] - br;
      b[1] = a[1] - bi;
      a[0] += br;
      a[1] += bi;
    }
    for (j = 1u; j < h; ++j) {
      const int32_t c = tw[2u * j * step], s = tw[2u * j * step + 1u];
      if (2u * j == h) { /* W = -i: b * W = (b_im, -b_re) */
        for (a = z + 2u * j; a < end; a += jump) {
          int32_t* b = a + span;
          const int32_t tr = b[1], ti = -b[0];
          b[0] = a[0] - tr;
          b[1] = a[1] - ti;
          a[0] += tr;
          a[1] += ti;
        }
        continue;
      }
      for (a = z + 2u * j; a < end; a += jump) {
        int32_t* b = a + span;
        const int32_t br = b[0], bi = b[1];
        /* b * (c - i s) */
        const int32_t tr = (int32_t)round_shift(
            (int64_t)c * br + (int64_t)s * bi, TWIDDLE_Q);
        const int32_t ti = (int32_t)round_shift(
            (int64_t)c * bi - (int64_t)s * br, TWIDDLE_Q);
        b[0] = a[0] - tr;
        b[1] = a[1] - ti;
        a[0] += tr;
        a[1] += ti;
      }
    }
  }
}

static void compute_frame(kws_mfcc* state) {
  const kws_mfcc_tables* t = state->tables;
  const size_t half = t->fft_length / 2u;
  const int32_t* z = state->fft;
  uint64_t acc[KWS_MFCC_MAX_MEL + 2];
  uint32_t* mel = state->mel + state->next * t->num_mel;
  int32_t peak;
  const unsigned g = load_frame(state, &peak);
  size_t i;
  fft(state);
  memset(acc, 0, (t->num_mel + 2u) * sizeof(acc[0]));
  for (i = 0; i < t->num_bins; ++i) {
    const size_t k = t->first_bin + i;
    const int32_t* a = z + 2u * (k & (half - 1u));
    const int32_t* b = z + 2u * ((half - k) & (half - 1u));
    const int64_t sr = (int64_t)a[0] + b[0], si = (int64_t)a[1] - b[1];
    const int64_t dr = (int64_t)a[0] - b[0], di = (int64_t)a[1] + b[1];
    /* W^k = c - i s; the Nyquist bin k = N/2 is past the table: W = -1 */
    const int64_t c = k < half ? t->twiddle[2u * k] : -((int64_t)1 << TWIDDLE_Q);
    const int64_t s = k < half ? t->twiddle[2u * k + 1u] : 0;
    /* 2X = (Z[k] + conj Z[N/2-k]) - i W^k (Z[k] - conj Z[N/2-k]) */
    const int64_t xr = sr + round_shift(c * di - s * dr, TWIDDLE_Q);
    const int64_t xi = si - round_shift(c * dr + s * di, TWIDDLE_Q);
    const uint32_t magnitude =
        isqrt64((uint64_t)(xr * xr) + (uint64_t)(xi * xi));
    const uint8_t band = t->mel_band[i];
    /* acc[j + 1] is band j: the falling slope's band is mel_band - 1 */
    acc[band] += (uint64_t)t->mel_weight[2u * i] * magnitude;
    acc[band + 1u] += (uint64_t)t->mel_weight[2u * i + 1u] * magnitude;
  }
  for (i = 0; i < t->num_mel; ++i) {
    const uint64_t v = (acc[i + 1u] + ((uint64_t)1 << (t->mel_shift - 1u))) >>
                       t->mel_shift;
    mel[i] = v > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)v;
  }
  state->peak[state->next] = peak;
  state->exponent[state->next] =
      31 + (int32_t)g - (int32_t)t->input_shift - (int32_t)t->mel_shift;
  state->next = (state->next + 1u) % state->num_frames;
  if (state->filled < state->num_frames) state->filled += 1u;
}

size_t kws_mfcc_add(kws_mfcc* state, const int16_t* samples, size_t n) {
  const size_t length = state->tables->window_length;
  const size_t stride = state->tables->stride;
  size_t frames = 0u;
  while (n > 0u) {
    const size_t room = length - state->frame_fill;
    const size_t take = n < room ? n : room;
    size_t i;
    for (i = 0; i < take; ++i) state->frame[state->frame_fill + i] = samples[i];
    state->frame_fill += take;
    samples += take;
    n -= take;
    if (state->frame_fill == length) {
      compute_frame(state);
      ++frames;
      memmove(state->frame, state->frame + stride,
              (length - stride) * sizeof(int32_t));
      state->frame_fill = length - stride;
    }
  }
  return frames;
}

void kws_mfcc_window(const kws_mfcc* state, int32_t* out) {
  const kws_mfcc_tables* t = state->tables;
  const size_t nm = t->num_mel, nc = t->num_coefficients;
  const size_t half = nm / 2u, columns = (nm + 1u) / 2u;
  int32_t logs[KWS_MFCC_MAX_MEL];
  /* |log2| < 2^5 in Q24: sums of two fit int32, and the products
   * (DCT < 2^28) summed over 32 columns fit int64 */
  int32_t sums[KWS_MFCC_MAX_MEL / 2], diffs[KWS_MFCC_MAX_MEL / 2];
  int32_t peak = 1;
  uint64_t offset;
  int32_t log2_peak;
  size_t f, j, k;
  for (f = 0; f < state->num_frames; ++f) {
    if (state->peak[f] > peak) peak = state->peak[f];
  }
  /* eps * peak at exponent KWS_MFCC_LOG_OFFSET_Q: < 2^32 * 2^15 */
  offset = (uint64_t)t->log_offset * (uint32_t)peak;
  log2_peak = log2_q24(t, (uint32_t)peak);
  for (f = 0; f < state->num_frames; ++f) {
    const size_t slot = (state->next + f) % state->num_frames;
    const uint32_t* mel = state->mel + slot * nm;
    const int32_t e = state->exponent[slot];
    for (j = 0; j < nm; ++j) {
      /* mel * 2^-e + offset * 2^-50 as sum * 2^-exponent, in uint64 */
      uint64_t sum = offset;
      int32_t exponent = KWS_MFCC_LOG_OFFSET_Q;
      const int32_t d = KWS_MFCC_LOG_OFFSET_Q - e;
      if (mel[j] != 0u) {
        if (d <= 31) {
          sum = ((uint64_t)mel[j] << d) + offset;
        } else { /* offset's lost bits are < 2^-31 of mel */
          sum = ((uint64_t)mel[j] << 31) + (offset >> (d - 31));
          exponent = e + 31;
        }
      }
      logs[j] = log2_q24(t, sum) - exponent * (1 << LOG2_Q) - log2_peak;
    }
    /* DCT-II symmetry: D[k][nm-1-j] = (-1)^k D[k][j], so the even
     * coefficients take sums and the odd ones differences of the mirrored
     * logs, each over half the bands (the middle band of an odd nm once) */
    for (j = 0; j < half; ++j) {
      const int32_t lo = logs[j], hi = logs[nm - 1u - j];
      sums[j] = lo + hi;
      diffs[j] = lo - hi;
    }
    if (nm % 2u) {
      sums[half] = logs[half];
      diffs[half] = 0;
    }
    for (k = 0; k < nc; ++k) {
      const int32_t* row = t->dct + k * columns;
      const int32_t* v = k % 2u ? diffs : sums;
      int64_t acc = 0;
      for (j = 0; j < columns; ++j) acc += (int64_t)v[j] * row[j];
      /* Q24 * Q30 -> Q(KWS_MFCC_Q) */
      out[f * nc + k] =
          (int32_t)round_shift(acc, LOG2_Q + TABLE_Q - KWS_MFCC_Q);
    }
  }
}

int kws_mfcc_quantize(const int32_t* q, int8_t* out, size_t n,
                      int32_t multiplier, int32_t shift, int32_t zero_point) {
  size_t i;
  if (multiplier < 0 || shift < 0 || shift > 62) return -1;
  for (i = 0; i < n; ++i) {
    /* |q * multiplier| < 2^62: floor_shift's bias covers it */
    const int64_t product = (int64_t)q[i] * multiplier;
    const int64_t scaled =
        (shift > 0 ? round_shift(product, (unsigned)shift) : product) +
        zero_point;
    out[i] = (int8_t)(scaled < -128 ? -128 : (scaled > 127 ? 127 : scaled));
  }
  return 0;
}
