#include "instruction_counter.h"

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYST_MASK 0x00FFFFFFu

void instruction_counter_start(void) {
  SYST_RVR = SYST_MASK;
  SYST_CVR = 0u;
  SYST_CSR = 0x5u; /* enable, processor clock, no interrupt */
}

uint32_t instruction_counter_now(void) {
  /* SysTick counts down; turn it into an up-count. */
  const uint32_t elapsed_ticks = (SYST_MASK - SYST_CVR) & SYST_MASK;
  return elapsed_ticks * INSTRUCTIONS_PER_TICK;
}

uint32_t instruction_counter_since(uint32_t start) {
  const uint32_t span = (SYST_MASK + 1u) * INSTRUCTIONS_PER_TICK;
  const uint32_t now = instruction_counter_now();
  return now >= start ? now - start : now + span - start;
}
