// HELLO: everything a host needs to know about this firmware and model
// (docs/protocol.md), sent when a host opens the port and on every change of
// input. Kept apart from serial_out (the transport, which knows no model) so
// that the pipeline can send its lines through serial_out while HELLO asks
// the pipeline for the recognizer's setting: hello -> pipeline -> serial_out.
#ifndef NANO_KWS_HELLO_H_
#define NANO_KWS_HELLO_H_

#include <stddef.h>

#include "ble_link.h"  // KWS_BLE
#include "serial_out.h"

void serial_send_hello(InputMode mode);

#if KWS_BLE
// The same line, CRC and '\n' included, into buf (the Bluetooth LE info
// characteristic, docs/ble.md). Returns its length without the NUL, 0 if it
// could not be built.
size_t hello_format(InputMode mode, char* buf, size_t cap);
#endif

#endif  // NANO_KWS_HELLO_H_
