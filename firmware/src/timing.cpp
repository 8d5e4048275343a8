#include "timing.h"

#include <Arduino.h>

#include "cmsis.h"
#include "mbed_stats.h"

void timing_setup() {
  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

uint32_t timing_cycles() { return DWT->CYCCNT; }

uint32_t timing_us_since(uint32_t start_cycles) {
  const uint32_t cycles = DWT->CYCCNT - start_cycles;
  return static_cast<uint32_t>(static_cast<uint64_t>(cycles) * 1000000u /
                               SystemCoreClock);
}

uint32_t timing_free_ram() {
  // The mbed core is built with platform.all-stats-enabled (mbed_app.json).
  mbed_stats_heap_t heap;
  mbed_stats_heap_get(&heap);
  return heap.reserved_size - heap.current_size;
}
