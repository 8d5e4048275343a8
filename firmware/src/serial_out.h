// Device -> host text lines (docs/protocol.md), built by kws_core's line
// builder in one shared buffer and written to the USB serial port whole.
#ifndef NANO_KWS_SERIAL_OUT_H_
#define NANO_KWS_SERIAL_OUT_H_

#include <stdint.h>

#include "kws_protocol.h"

#define KWS_FW_VERSION "0.1.0"

enum class InputMode { kMic, kHost };

const char* input_mode_name(InputMode mode);

// Starts a line in the shared buffer; finish it with serial_send().
kws_line* serial_begin(const char* tag);
void serial_send(kws_line* line);

// ERR code=... detail=... [seq=...]; seq < 0 leaves it out.
void serial_send_err(const char* code, const char* detail, int32_t seq = -1);

// HELLO with everything a host needs to know about this firmware and model.
void serial_send_hello(InputMode mode);

#endif  // NANO_KWS_SERIAL_OUT_H_
