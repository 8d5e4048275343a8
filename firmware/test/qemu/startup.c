/* Minimal start-up for running test programs on QEMU's mps2-an386
 * (Cortex-M4F) with semihosting: printf goes to the host and main()'s return
 * value becomes QEMU's exit status. Only for tests; the board uses the mbed
 * core's own start-up. */
#include <stdint.h>
#include <stdlib.h>

extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

/* From mps2_an386.ld. */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

#define CPACR (*(volatile uint32_t*)0xE000ED88u)

/* newlib's __libc_init_array calls these; with -nostartfiles nothing else
 * provides them. */
void _init(void) {}
void _fini(void) {}

void Reset_Handler(void) {
  uint32_t* src = &_sidata;
  uint32_t* dst;
  /* Full access to CP10/CP11: the softfp build may use VFP instructions and
   * the FPU is off after reset. */
  CPACR |= 0xFu << 20;
  __asm volatile("dsb\n\tisb" ::: "memory");
  for (dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

/* A fault ends the run with a distinctive status instead of hanging. */
void Fault_Handler(void) { _Exit(0x7F); }

__attribute__((section(".isr_vector"), used)) static void (*const
    kVectors[16])(void) = {
    (void (*)(void))(&_estack), /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
