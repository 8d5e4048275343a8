// Host -> device frames (docs/protocol.md): decoding with kws_core, the
// handshake that switches the input to host-streamed audio, clips, BYE, the
// 5 s timeout and the host closing the port, both back to the microphone.
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
// samples being dropped) and acts on each frame. A frame cut off by the host
// is dropped after KWS_FRAME_IDLE_MS of silence (kws_frame_decoder_idle).
void host_stream_poll(uint32_t now_ms, const HostStreamHandlers& handlers);

// The host closed the port (DTR dropped): a fresh decoder for the next one,
// and the microphone again.
void host_stream_disconnected(const HostStreamHandlers& handlers);

InputMode host_stream_mode();

// Between CLIP_BEGIN and CLIP_END: the clip is classified once, at its end,
// so the stride-by-stride recognizer stays silent (no DET, no LED).
bool host_stream_clip_open();

// AUDIO frames' samples, in arrival order.
kws_ring* host_stream_ring();

// True once any good frame arrived (the periodic HELLO then stops).
bool host_stream_host_seen();

// Frames rejected since start-up (CRC, length, type).
uint32_t host_stream_bad_frames();

#endif  // NANO_KWS_HOST_STREAM_H_
