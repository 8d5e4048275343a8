// HELLO: everything a host needs to know about this firmware and model
// (docs/protocol.md), sent when a host opens the port and on every change of
// input. Kept apart from serial_out (the transport, which knows no model) so
// that the pipeline can send its lines through serial_out while HELLO asks
// the pipeline for the recognizer's setting: hello -> pipeline -> serial_out.
#ifndef NANO_KWS_HELLO_H_
#define NANO_KWS_HELLO_H_

#include "serial_out.h"

void serial_send_hello(InputMode mode);

#endif  // NANO_KWS_HELLO_H_
