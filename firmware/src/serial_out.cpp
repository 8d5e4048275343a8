#include "serial_out.h"

#include <Arduino.h>
// Serial (arduino::UART) offers only the blocking write, which on this core
// (USBCDC::send) waits as long as the host keeps the port open without
// reading. The non-blocking USBCDC::send_nb is reached through the core's
// USBSerial object behind Serial.
#include <USB/PluggableUSBSerial.h>

#include "kws_txq.h"

static_assert(KWS_TXQ_USB_PACKET == CDC_MAX_PACKET_SIZE,
              "kws_txq's short-packet rule needs the real packet size");

namespace {
// Two maximal lines: a HELLO, STATS and the DETs of a stall of a second or
// so. A host that reads nothing for longer loses lines, not audio.
constexpr size_t kQueueBytes = 2 * KWS_LINE_MAX;

// One line at a time: everything is sent from the main loop, never from an
// interrupt, so a single buffer suffices.
char g_line_buffer[KWS_LINE_MAX + 1];
kws_line g_line;
uint8_t g_queue_storage[kQueueBytes];
kws_txq g_queue;
}  // namespace

void serial_setup() {
  kws_txq_init(&g_queue, g_queue_storage, kQueueBytes);
}

const char* input_mode_name(InputMode mode) {
  return mode == InputMode::kHost ? "host" : "mic";
}

kws_line* serial_begin(const char* tag) {
  kws_line_begin(&g_line, g_line_buffer, sizeof(g_line_buffer), tag);
  return &g_line;
}

void serial_send(kws_line* line) {
  const size_t length = kws_line_end(line);
  if (length == 0 || !serial_host_connected()) return;
  kws_txq_push(&g_queue, line->buf, length);
  serial_pump();
}

void serial_pump() {
  uint8_t packet[KWS_TXQ_USB_PACKET];
  const size_t size = kws_txq_packet(&g_queue, packet, sizeof(packet));
  if (size == 0) return;
  // Takes the packet only when no transfer is in flight and the host is
  // connected; otherwise takes nothing and the packet is offered again.
  uint32_t taken = 0;
  _SerialUSB.send_nb(packet, size, &taken, true);
  kws_txq_pop(&g_queue, taken);
}

bool serial_host_connected() { return _SerialUSB.connected(); }

// The core aborts the transfer in flight when DTR drops, so the next host
// would get the rest of a cut line first.
void serial_disconnected() { kws_txq_clear(&g_queue); }

uint32_t serial_lines_dropped() { return kws_txq_dropped(&g_queue); }

void serial_send_err(const char* code, const char* detail, int32_t seq) {
  kws_line* line = serial_begin("ERR");
  kws_line_add_str(line, "code", code);
  kws_line_add_str(line, "detail", detail);
  if (seq >= 0) kws_line_add_int(line, "seq", seq);
  serial_send(line);
}
