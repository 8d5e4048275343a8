/* Instructions the MFCC front end executes on QEMU's Cortex-M4 (-icount
 * shift=0, SysTick x 40, see m4_model/instruction_counter.h), built with the
 * board's flags: per 20 ms stride (one kws_mfcc_add of 320 samples, which
 * computes one frame), per window (kws_mfcc_window) and for the int8
 * quantization of a window. The clip is noise with a speech-like envelope;
 * the work does not depend on the samples beyond a few branches. */
#include <stdint.h>
#include <stdio.h>

#include "instruction_counter.h"
#include "kws_core.h"
#include "kws_mfcc_tables.h"

static uint32_t g_state = 0x2468ace1u;

static uint32_t rnd(void) { /* xorshift32 */
  g_state ^= g_state << 13;
  g_state ^= g_state >> 17;
  g_state ^= g_state << 5;
  return g_state;
}

int main(void) {
  static const kws_mfcc_tables tables = KWS_MFCC_TABLES_INIT;
  static int32_t storage[KWS_MFCC_STORAGE_WORDS(480, 512, 40,
                                                KWS_MFCC_FRAMES)];
  static int32_t out[KWS_MFCC_FRAMES * 10];
  static int8_t q[KWS_MFCC_FRAMES * 10];
  static int16_t clip[16000];
  kws_mfcc m;
  uint32_t total = 0u, most = 0u, least = 0xFFFFFFFFu, start, spent;
  uint32_t frames = 0u;
  size_t at;
  int i;
  for (i = 0; i < 16000; ++i) {
    const int32_t env = i > 4000 && i < 11000 ? 8000 : 300;
    clip[i] = (int16_t)((int32_t)(rnd() % (uint32_t)(2 * env + 1)) - env);
  }
  if (kws_mfcc_init(&m, &tables, KWS_MFCC_FRAMES, storage,
                    sizeof storage / sizeof storage[0]) != 0) {
    printf("mfcc-cost: init failed\n");
    return 1;
  }
  instruction_counter_start();
  kws_mfcc_add(&m, clip, 160); /* then every 320 samples complete a frame */
  for (at = 160u; at + 320u <= 16000u; at += 320u) {
    start = instruction_counter_now();
    frames += (uint32_t)kws_mfcc_add(&m, clip + at, 320u);
    spent = instruction_counter_since(start);
    total += spent;
    if (spent > most) most = spent;
    if (spent < least) least = spent;
  }
  printf("mfcc-cost stride (320 samples, 1 frame): mean %lu min %lu max %lu "
         "instructions over %lu frames\n",
         (unsigned long)(total / frames), (unsigned long)least,
         (unsigned long)most, (unsigned long)frames);
  start = instruction_counter_now();
  kws_mfcc_window(&m, out);
  spent = instruction_counter_since(start);
  printf("mfcc-cost window (%d x 10 MFCCs): %lu instructions\n",
         KWS_MFCC_FRAMES, (unsigned long)spent);
  start = instruction_counter_now();
  kws_mfcc_quantize(out, q, KWS_MFCC_FRAMES * 10, 1836388716, 46, 83);
  spent = instruction_counter_since(start);
  printf("mfcc-cost quantize (%d values): %lu instructions\n",
         KWS_MFCC_FRAMES * 10, (unsigned long)spent);
  return 0;
}
