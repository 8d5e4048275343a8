#include "marker.h"

#if KWS_MARKER

#include <Arduino.h>

#include "nrf.h"

MarkerPin g_marker_pins[2] = {};

namespace {
// The nRF52840's GPIO ports by number: an mbed PinName is port * 32 + bit.
MarkerPin resolve(int arduino_pin) {
  MarkerPin pin = {nullptr, nullptr, 0};
  if (arduino_pin < 0) return pin;
  pinMode(arduino_pin, OUTPUT);
  digitalWrite(arduino_pin, LOW);
  const uint32_t name = static_cast<uint32_t>(digitalPinToPinName(arduino_pin));
  NRF_GPIO_Type* port = (name >> 5) ? NRF_P1 : NRF_P0;
  pin.set = &port->OUTSET;
  pin.clear = &port->OUTCLR;
  pin.mask = 1u << (name & 31u);
  return pin;
}
}  // namespace

void marker_setup() {
  g_marker_pins[kMarkerFrontEnd] = resolve(KWS_MARKER_FRONTEND_PIN);
  g_marker_pins[kMarkerInference] = resolve(KWS_MARKER_INFERENCE_PIN);
}

#endif  // KWS_MARKER
