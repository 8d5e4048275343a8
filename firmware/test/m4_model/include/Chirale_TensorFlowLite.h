// Stands in for the library's top header in the bare-metal check image. The
// real one only pulls in <Arduino.h> and <Wire.h> (peripherals/peripherals.h)
// so that the Arduino dependency finder builds the library; no TFLM code
// depends on it. This folder comes first on the include path.
#ifndef NANO_KWS_M4_CHIRALE_SHIM_H_
#define NANO_KWS_M4_CHIRALE_SHIM_H_
#endif  // NANO_KWS_M4_CHIRALE_SHIM_H_
