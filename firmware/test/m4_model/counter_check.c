/* Checks instruction_counter against loops of known length on QEMU's Cortex-M4
 * (-icount shift=0). Prints "expected measured" per interval; kws's tests
 * judge the pairs. Needs no TFLM library. The intervals add up to more than
 * the counter's 24-bit span, so some of them cross its wrap. */
#include <stdint.h>
#include <stdio.h>

#include "instruction_counter.h"

/* Two instructions per iteration (subs, bne). */
static void spin(uint32_t iterations) {
  __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(iterations) : : "cc");
}

int main(void) {
  static const uint32_t kShort[] = {1000u, 20000u, 500000u};
  uint32_t i;
  instruction_counter_start();
  for (i = 0; i < sizeof kShort / sizeof kShort[0]; ++i) {
    const uint32_t start = instruction_counter_now();
    spin(kShort[i]);
    printf("%lu %lu\n", (unsigned long)(2u * kShort[i]),
           (unsigned long)instruction_counter_since(start));
  }
  for (i = 0; i < 40u; ++i) { /* 40 x 20 M instructions: past the wrap */
    const uint32_t start = instruction_counter_now();
    spin(10000000u);
    printf("%lu %lu\n", 20000000ul,
           (unsigned long)instruction_counter_since(start));
  }
  return 0;
}
