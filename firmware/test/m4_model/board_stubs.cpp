// The two things the TFLM library takes from the Arduino core, for the
// bare-metal check image: a log sink (system_setup.cpp prints to Serial) and a
// microsecond clock (peripherals/utility_arduino.cpp calls micros()). Neither
// is on the inference path; both source files are left out of this image.
#include <stdint.h>
#include <stdio.h>

#include "instruction_counter.h"

extern "C" void DebugLog(const char* s) { fputs(s, stderr); }

namespace peripherals {
uint32_t MicrosecondsCounter() {
  // Only TFLM's own MicroProfiler reads this; the check uses its own profiler.
  return instruction_counter_now() / 64u;
}
}  // namespace peripherals

// Static objects with destructors register them against this handle; crtbegin
// defines it, and -nostartfiles leaves crtbegin out (mbed's start-up has it).
extern "C" {
void* __dso_handle = nullptr;
}
