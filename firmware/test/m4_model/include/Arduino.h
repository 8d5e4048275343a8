// Stands in for the Arduino core's top header in the bare-metal check image:
// firmware/src/pipeline.cpp, which the stream mode runs as the board's loop
// does, needs only millis() from it (STATS); pipeline_stubs.cpp defines it.
#ifndef NANO_KWS_M4_ARDUINO_SHIM_H_
#define NANO_KWS_M4_ARDUINO_SHIM_H_

#include <stdint.h>

uint32_t millis();

#endif  // NANO_KWS_M4_ARDUINO_SHIM_H_
