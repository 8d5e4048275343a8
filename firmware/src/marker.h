// Marker pins for an external power monitor (Nordic PPK2, Joulescope): a GPIO
// is high for exactly the duration of each inference (and, optionally, a
// second one for each front-end stride), so the monitor's logic input cuts
// its current trace into per-inference energies (`kws bench --power`).
//
// Off by default and then compiled out: MarkerScope is an empty inline struct
// and marker_setup() an empty inline function, so the default build has no
// extra instruction, byte of flash or byte of RAM. Turn it on with
//   PLATFORMIO_BUILD_FLAGS="-DKWS_MARKER=1" pio run -e nano33ble
// and move the pins with -DKWS_MARKER_INFERENCE_PIN=<Arduino pin> and
// -DKWS_MARKER_FRONTEND_PIN=<Arduino pin> (-1: no front-end marker).
//
// Cost when on (arm-none-eabi-g++ -Os -mcpu=cortex-m4, as the mbed core
// builds): 9 instructions and 22 bytes of code per marked stage (load the
// pin's registers, test, store to OUTSET; the same for OUTCLR), about 0.2 us
// at 64 MHz against a 2 ms front end and a 39 ms inference; marker.cpp adds
// 116 bytes of flash and 24 bytes of RAM. The pin drives only the monitor's
// high-impedance logic input and its cable (tens of pF: C x V^2 x f is well
// under a microwatt at 50 edges per second).
#ifndef NANO_KWS_MARKER_H_
#define NANO_KWS_MARKER_H_

#include <stdint.h>

#ifndef KWS_MARKER
#define KWS_MARKER 0
#endif
// D2 and D3 (P1.11, P1.12 on the Nano 33 BLE Sense header) are free: the
// sketch uses neither, and neither carries a board function.
#ifndef KWS_MARKER_INFERENCE_PIN
#define KWS_MARKER_INFERENCE_PIN 2
#endif
#ifndef KWS_MARKER_FRONTEND_PIN
#define KWS_MARKER_FRONTEND_PIN 3
#endif

enum MarkerStage { kMarkerFrontEnd = 0, kMarkerInference = 1 };

#if KWS_MARKER

// Where a stage's edge is written: the port's OUTSET/OUTCLR registers and the
// pin's bit; null registers for a stage without a pin.
struct MarkerPin {
  volatile uint32_t* set;
  volatile uint32_t* clear;
  uint32_t mask;
};
extern MarkerPin g_marker_pins[2];

// Configures the pins as outputs, low.
void marker_setup();

// High while in scope: construct it first thing in the marked stage.
class MarkerScope {
 public:
  explicit MarkerScope(MarkerStage stage) : pin_(g_marker_pins[stage]) {
    if (pin_.set) *pin_.set = pin_.mask;
  }
  ~MarkerScope() {
    if (pin_.clear) *pin_.clear = pin_.mask;
  }
  MarkerScope(const MarkerScope&) = delete;
  MarkerScope& operator=(const MarkerScope&) = delete;

 private:
  const MarkerPin& pin_;
};

#else

inline void marker_setup() {}

class MarkerScope {
 public:
  explicit MarkerScope(MarkerStage) {}
};

#endif  // KWS_MARKER

#endif  // NANO_KWS_MARKER_H_
