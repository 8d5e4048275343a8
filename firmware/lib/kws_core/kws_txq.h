/* Device -> host line queue: lines go in whole, USB packets come out.
 *
 * Why: on the mbed core, Serial.write (USBCDC::send) blocks while the host
 * holds the port open (DTR) without reading; after about 420 ms of that the
 * microphone ring overruns. The firmware instead queues each line here and
 * hands the USB stack one packet at a time with its non-blocking send
 * (USBCDC::send_nb), so a host that stops reading costs lines, never audio.
 * A line that does not fit is dropped whole and counted (STATS
 * lines_dropped): the host sees complete lines or none.
 *
 * Packets: a USB bulk transfer ends with a packet shorter than the maximum
 * packet size. mbed's USBCDC sends no zero-length packet after a full one, so
 * the host may hold bytes that end on a full packet until more arrive (up to
 * the next STATS, 5 s later). kws_txq_packet therefore never returns a full
 * packet that would empty the queue: it leaves the last byte for a short
 * packet of its own.
 *
 * Single-threaded: the main loop pushes and sends. */
#ifndef KWS_TXQ_H_
#define KWS_TXQ_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_TXQ_USB_PACKET 64u /* full-speed bulk endpoint (CDC_MAX_PACKET_SIZE) */

typedef struct {
  uint8_t* buf;
  size_t cap;
  size_t head;  /* next byte to send */
  size_t count; /* bytes queued */
  uint32_t dropped_lines;
} kws_txq;

/* storage: cap bytes, at least one line's worth. Returns 0, or -1 for a NULL
 * storage or cap 0. */
int kws_txq_init(kws_txq* q, uint8_t* storage, size_t cap);

/* Queues a whole line; returns 1, or 0 when it does not fit (then it is
 * dropped and counted; an empty line is neither). */
int kws_txq_push(kws_txq* q, const char* line, size_t n);

/* Copies the next packet, at most packet_size bytes, into out and returns
 * its size (0 when the queue is empty). It stays queued until
 * kws_txq_pop: the USB stack may take fewer bytes than offered. */
size_t kws_txq_packet(const kws_txq* q, uint8_t* out, size_t packet_size);

/* Removes the first n bytes (what the USB stack took). */
void kws_txq_pop(kws_txq* q, size_t n);

/* Forgets everything queued (the host closed the port: a line cut off by
 * the aborted transfer would reach the next host as garbage). */
void kws_txq_clear(kws_txq* q);

size_t kws_txq_pending(const kws_txq* q);
uint32_t kws_txq_dropped(const kws_txq* q);

#ifdef __cplusplus
}
#endif

#endif /* KWS_TXQ_H_ */
