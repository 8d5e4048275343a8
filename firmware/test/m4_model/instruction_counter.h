// Executed-instruction counts on QEMU's Cortex-M4 (mps2-an386).
//
// QEMU models no M4 cycles and its DWT cycle counter reads 0, but with
// `-icount shift=0` virtual time advances exactly 1 ns per instruction, and the
// board's SysTick runs at 25 MHz off that clock: one tick per 40 instructions.
// So instructions = 40 x SysTick ticks, exact to within one tick per reading,
// and the same on every run.
#ifndef NANO_KWS_M4_INSTRUCTION_COUNTER_H_
#define NANO_KWS_M4_INSTRUCTION_COUNTER_H_

#include <stdint.h>

#define INSTRUCTIONS_PER_TICK 40u

#ifdef __cplusplus
extern "C" {
#endif

// Starts SysTick free-running over its full 24-bit range.
void instruction_counter_start(void);

// Instructions executed since start, modulo 2^24 ticks (671 M instructions):
// differences of two readings are right for any shorter interval.
uint32_t instruction_counter_now(void);

// Instructions between two readings of instruction_counter_now().
uint32_t instruction_counter_since(uint32_t start);

#ifdef __cplusplus
}
#endif

#endif  // NANO_KWS_M4_INSTRUCTION_COUNTER_H_
