// Cycle-accurate timing of the pipeline stages and the figures STATS reports.
//
// The DWT cycle counter counts core clock cycles (64 MHz) with no overhead and
// no interrupt, so a stage is timed by two register reads. It wraps every
// 2^32 cycles (67 s); differences of uint32 values stay right across one wrap.
#ifndef NANO_KWS_TIMING_H_
#define NANO_KWS_TIMING_H_

#include <stdint.h>

// Enables the DWT cycle counter (trace must be enabled first, via DEMCR).
void timing_setup();

uint32_t timing_cycles();

// Microseconds from a cycle difference, at SystemCoreClock.
uint32_t timing_us_since(uint32_t start_cycles);

// Count, mean and maximum of a stage's durations since the last clear().
struct TimingStat {
  uint32_t count = 0;
  uint64_t total_us = 0;
  uint32_t max_us = 0;

  void add(uint32_t us) {
    ++count;
    total_us += us;
    if (us > max_us) max_us = us;
  }
  uint32_t average_us() const {
    return count ? static_cast<uint32_t>(total_us / count) : 0;
  }
  void clear() { *this = TimingStat(); }
};

// Heap bytes still free (mbed's heap statistics: reserved minus in use). The
// static RAM (arena, buffers) is fixed at link time and shown by the build.
uint32_t timing_free_ram();

#endif  // NANO_KWS_TIMING_H_
