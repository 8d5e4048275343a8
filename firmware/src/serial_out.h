// Device -> host text lines (docs/protocol.md), built by kws_core's line
// builder in one shared buffer, queued whole (kws_txq) and sent to the USB
// serial port a packet at a time without ever blocking the loop.
#ifndef NANO_KWS_SERIAL_OUT_H_
#define NANO_KWS_SERIAL_OUT_H_

#include <stdint.h>

#include "kws_protocol.h"

#define KWS_FW_VERSION "0.1.0"

enum class InputMode { kMic, kHost };

const char* input_mode_name(InputMode mode);

// Before anything is sent.
void serial_setup();

// Starts a line in the shared buffer; finish it with serial_send(), which
// queues it (dropped and counted if the queue is full; not queued at all
// while no host has the port open, as Serial.write would lose it too).
kws_line* serial_begin(const char* tag);
void serial_send(kws_line* line);

// Hands the next USB packet of queued lines to the USB stack if it is idle;
// never waits. Call it often: at most one packet goes per call.
void serial_pump();

// A host has the port open (DTR set).
bool serial_host_connected();

// The host closed the port: forgets the queued lines.
void serial_disconnected();

// Lines dropped since start-up because the host did not read them in time.
uint32_t serial_lines_dropped();

// ERR code=... detail=... [seq=...]; seq < 0 leaves it out.
void serial_send_err(const char* code, const char* detail, int32_t seq = -1);

#endif  // NANO_KWS_SERIAL_OUT_H_
