#include "kws_clock.h"

uint32_t kws_elapsed_ms(uint32_t now_ms, uint32_t since_ms) {
  const uint32_t difference = now_ms - since_ms;
  /* Bit 31 set: since_ms is ahead of now_ms (modulo 2^32), no time passed. */
  return (difference & 0x80000000u) != 0u ? 0u : difference;
}
