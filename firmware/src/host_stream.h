// Host -> device frames (docs/protocol.md): decoding with kws_core, the
// handshake that switches the input to host-streamed audio, clips, BYE and
// the 5 s timeout back to the microphone.
#ifndef NANO_KWS_HOST_STREAM_H_
#define NANO_KWS_HOST_STREAM_H_

#include <stdint.h>

#include "kws_ring.h"
#include "serial_out.h"

// What the rest of the firmware does for the protocol's events.
struct HostStreamHandlers {
  void (*input_changed)(InputMode mode);  // the MODE line is already sent
  void (*clip_begin)(uint32_t clip_id);
  void (*clip_end)(uint32_t clip_id);     // must drain host_stream_ring()
};

void host_stream_setup();

// Reads what the serial port has (only while the audio ring can take a
// whole frame more, so USB flow control holds the host back instead of
// samples being dropped) and acts on each frame.
void host_stream_poll(uint32_t now_ms, const HostStreamHandlers& handlers);

InputMode host_stream_mode();

// AUDIO frames' samples, in arrival order.
kws_ring* host_stream_ring();

// True once any good frame arrived (the periodic HELLO then stops).
bool host_stream_host_seen();

// Frames rejected since start-up (CRC, length, type).
uint32_t host_stream_bad_frames();

#endif  // NANO_KWS_HOST_STREAM_H_
