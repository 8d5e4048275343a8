#include "kws_txq.h"

#include <string.h>

int kws_txq_init(kws_txq* q, uint8_t* storage, size_t cap) {
  if (storage == NULL || cap == 0u) return -1;
  q->buf = storage;
  q->cap = cap;
  q->head = 0u;
  q->count = 0u;
  q->dropped_lines = 0u;
  return 0;
}

int kws_txq_push(kws_txq* q, const char* line, size_t n) {
  size_t tail, first;
  if (n == 0u) return 1;
  if (n > q->cap - q->count) {
    ++q->dropped_lines;
    return 0;
  }
  tail = (q->head + q->count) % q->cap;
  first = q->cap - tail < n ? q->cap - tail : n;
  memcpy(q->buf + tail, line, first);
  memcpy(q->buf, line + first, n - first);
  q->count += n;
  return 1;
}

size_t kws_txq_packet(const kws_txq* q, uint8_t* out, size_t packet_size) {
  size_t n = q->count < packet_size ? q->count : packet_size;
  size_t first;
  /* A full packet that empties the queue would end the transfer without a
   * short packet: keep its last byte back. */
  if (n == packet_size && n == q->count && n > 1u) --n;
  first = q->cap - q->head < n ? q->cap - q->head : n;
  memcpy(out, q->buf + q->head, first);
  memcpy(out + first, q->buf, n - first);
  return n;
}

void kws_txq_pop(kws_txq* q, size_t n) {
  if (n > q->count) n = q->count;
  q->head = (q->head + n) % q->cap;
  q->count -= n;
}

void kws_txq_clear(kws_txq* q) {
  q->head = 0u;
  q->count = 0u;
}

size_t kws_txq_pending(const kws_txq* q) { return q->count; }

uint32_t kws_txq_dropped(const kws_txq* q) { return q->dropped_lines; }
