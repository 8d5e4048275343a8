// Bluetooth LE peripheral (docs/ble.md): the GATT service of kws_ble.h, with
// detections notified, the HELLO line as info and the STATS figures as stats,
// through ArduinoBLE 1.5.0. Beside the USB serial link, which is unchanged.
//
// Off by default: only `pio run -e nano33ble_ble` defines KWS_BLE=1 and
// compiles ble_link.cpp; otherwise this header declares nothing and every
// call site (main, responder, pipeline) is compiled out.
//
// The board never waits for the radio: a detection is notified only when a
// central is subscribed and the controller has an ACL buffer free, else it
// is dropped and counted (ble_dropped in stats); ArduinoBLE would otherwise
// spin in HCIClass::sendAclPkt until a buffer frees (ble_link.cpp).
#ifndef NANO_KWS_BLE_LINK_H_
#define NANO_KWS_BLE_LINK_H_

#ifndef KWS_BLE
#define KWS_BLE 0
#endif

#if KWS_BLE

#include <stdint.h>

#include "kws_ble.h"
#include "pipeline.h"
#include "serial_out.h"

// Starts the radio, builds the service and advertises; the info holds the
// HELLO line for mode. false if ArduinoBLE could not start the controller or
// advertise: every other call then does nothing and serial goes on alone.
bool ble_link_setup(InputMode mode);

// Runs ArduinoBLE's host stack (BLE.poll()): connection events, reads and
// subscriptions. Once per loop, after the pipeline step, so its work never
// lands inside a timed stage.
void ble_link_poll();

// The info value: the HELLO line for this input mode (on every change).
void ble_link_set_info(InputMode mode);

// A DET: notified if a central listens and a buffer is free, else dropped;
// either way it takes the next sequence number.
void ble_link_detection(uint8_t label, uint8_t score, uint32_t t_ms,
                        const StepTiming& timing);

// The stats value, with the STATS line's figures in stats; the radio's own
// counters (notified, dropped, connections) are filled in here.
void ble_link_set_stats(kws_ble_stats* stats);

#endif  // KWS_BLE

#endif  // NANO_KWS_BLE_LINK_H_
