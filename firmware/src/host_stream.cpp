#include "host_stream.h"

#include <Arduino.h>

#include "hello.h"
#include "kws_clock.h"
#include "kws_protocol.h"

namespace {
constexpr uint32_t kTimeoutMs = 5000;
// Bytes taken from the serial port per decode call. With at most this many
// new bytes, the frames completed by one read hold at most one whole payload
// plus kReadBytes more bytes of audio.
constexpr int kReadBytes = 64;
constexpr size_t kFrameSamplesMax = KWS_FRAME_MAX_PAYLOAD / 2 + kReadBytes / 2;
constexpr uint32_t kRingSamples = 4096;

kws_frame_decoder g_decoder;
int16_t g_ring_storage[kRingSamples];
kws_ring g_ring;
InputMode g_mode = InputMode::kMic;
uint32_t g_last_frame_ms = 0;
bool g_host_seen = false;
bool g_clip_open = false;
uint32_t g_bad_frames = 0;

void send_ack(const kws_frame& frame) {
  kws_line* line = serial_begin("ACK");
  kws_line_add_int(line, "seq", frame.seq);
  kws_line_add_int(line, "type", frame.type);
  serial_send(line);
}

void set_mode(InputMode mode, const char* reason,
              const HostStreamHandlers& handlers) {
  if (mode == g_mode) return;
  g_mode = mode;
  g_clip_open = false;
  kws_ring_skip(&g_ring, kRingSamples);
  kws_line* line = serial_begin("MODE");
  kws_line_add_str(line, "mode", input_mode_name(mode));
  kws_line_add_str(line, "reason", reason);
  serial_send(line);
  handlers.input_changed(mode);
}

void handle_frame(const kws_frame& frame, const HostStreamHandlers& handlers) {
  if (kws_frame_check_payload(&frame) != KWS_FRAME_OK) {
    ++g_bad_frames;
    serial_send_err("length", "payload_size_wrong_for_type", frame.seq);
    return;
  }
  if (frame.type == KWS_FRAME_HELLO) {
    if (frame.payload[0] != KWS_PROTOCOL_VERSION) {
      serial_send_err("proto", "unsupported_protocol_version", frame.seq);
      return;
    }
    set_mode(InputMode::kHost, "handshake", handlers);
    g_clip_open = false;  // a new host: an earlier one's clip is abandoned
    send_ack(frame);
    serial_send_hello(g_mode);
    return;
  }
  if (g_mode != InputMode::kHost) {
    serial_send_err("mode", "no_handshake", frame.seq);
    return;
  }
  switch (frame.type) {
    case KWS_FRAME_AUDIO: {
      int16_t samples[KWS_FRAME_MAX_PAYLOAD / 2];
      const size_t count = kws_frame_samples(&frame, samples,
                                             KWS_FRAME_MAX_PAYLOAD / 2);
      kws_ring_write(&g_ring, samples, count);
      break;
    }
    case KWS_FRAME_CLIP_BEGIN:
      kws_ring_skip(&g_ring, kRingSamples);  // leftovers of an unfinished clip
      g_clip_open = true;
      handlers.clip_begin(kws_frame_u32(&frame, 0));
      send_ack(frame);
      break;
    case KWS_FRAME_CLIP_END:
      g_clip_open = false;
      handlers.clip_end(kws_frame_u32(&frame, 0));
      break;
    case KWS_FRAME_BYE:
      // The decoder is not reset: BYE ends on a frame boundary, so nothing
      // stale is buffered, and a frame right behind it must survive.
      set_mode(InputMode::kMic, "command", handlers);
      send_ack(frame);
      break;
    default:
      break;
  }
}

const char* error_code(kws_frame_status status) {
  switch (status) {
    case KWS_FRAME_ERR_CRC: return "crc";
    case KWS_FRAME_ERR_LENGTH: return "length";
    default: return "type";
  }
}

// Feeds n bytes (none: what a rescan finds) and acts on every event.
void decode(const uint8_t* bytes, size_t n, uint32_t now_ms,
            const HostStreamHandlers& handlers) {
  size_t offset = 0;
  kws_frame_status status;
  do {
    size_t used = 0;
    kws_frame frame;
    status = kws_frame_decode(&g_decoder, bytes + offset, n - offset, &used,
                              &frame);
    offset += used;
    if (status == KWS_FRAME_OK) {
      g_last_frame_ms = now_ms;
      g_host_seen = true;
      handle_frame(frame, handlers);
    } else if (status != KWS_FRAME_NEED_MORE) {
      ++g_bad_frames;
      serial_send_err(error_code(status), "frame_rejected", frame.seq);
    }
  } while (status != KWS_FRAME_NEED_MORE);
}
}  // namespace

void host_stream_setup() {
  kws_frame_decoder_init(&g_decoder);
  kws_ring_init(&g_ring, g_ring_storage, kRingSamples);
}

void host_stream_poll(uint32_t now_ms, const HostStreamHandlers& handlers) {
  uint8_t bytes[kReadBytes];
  bool read_any = false;
  bool port_empty = false;
  while (kws_ring_space(&g_ring) >= kFrameSamplesMax) {
    int n = 0;
    while (n < kReadBytes && Serial.available() > 0) {
      bytes[n++] = static_cast<uint8_t>(Serial.read());
    }
    if (n == 0) {
      port_empty = true;
      break;
    }
    read_any = true;
    decode(bytes, static_cast<size_t>(n), now_ms, handlers);
  }
  // Only an empty port is the host's silence; a full ring is the device's.
  if (kws_frame_decoder_idle(&g_decoder, now_ms, read_any || !port_empty)) {
    // Counted, but no ERR: a host reconnecting right now would take it for
    // the answer to its HELLO.
    ++g_bad_frames;
    decode(bytes, 0, now_ms, handlers);
  }
  if (g_mode == InputMode::kHost &&
      kws_elapsed_ms(now_ms, g_last_frame_ms) > kTimeoutMs) {
    kws_frame_decoder_init(&g_decoder);
    set_mode(InputMode::kMic, "timeout", handlers);
  }
}

void host_stream_disconnected(const HostStreamHandlers& handlers) {
  kws_frame_decoder_init(&g_decoder);
  set_mode(InputMode::kMic, "disconnect", handlers);
}

InputMode host_stream_mode() { return g_mode; }

kws_ring* host_stream_ring() { return &g_ring; }

bool host_stream_clip_open() { return g_clip_open; }

bool host_stream_host_seen() { return g_host_seen; }

uint32_t host_stream_bad_frames() { return g_bad_frames; }
