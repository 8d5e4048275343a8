#include "kws_ring.h"

int kws_ring_init(kws_ring* ring, int16_t* storage, uint32_t capacity) {
  if (ring == NULL || storage == NULL || capacity < 2u ||
      capacity > 0x80000000u || (capacity & (capacity - 1u)) != 0u) {
    return -1;
  }
  ring->data = storage;
  ring->mask = capacity - 1u;
  ring->head = 0u;
  ring->tail = 0u;
  ring->dropped = 0u;
  return 0;
}

size_t kws_ring_write(kws_ring* ring, const int16_t* samples, size_t n) {
  const uint32_t head = ring->head;
  const uint32_t space = (ring->mask + 1u) - (head - ring->tail);
  const size_t stored = n < space ? n : space;
  size_t i;
  for (i = 0; i < stored; ++i) {
    ring->data[(head + (uint32_t)i) & ring->mask] = samples[i];
  }
  /* Publish only after the samples are in place (volatile order). */
  ring->head = head + (uint32_t)stored;
  ring->dropped += (uint32_t)(n - stored);
  return stored;
}

size_t kws_ring_read(kws_ring* ring, int16_t* out, size_t max_n) {
  const uint32_t tail = ring->tail;
  const uint32_t level = ring->head - tail;
  const size_t count = max_n < level ? max_n : level;
  size_t i;
  for (i = 0; i < count; ++i) {
    out[i] = ring->data[(tail + (uint32_t)i) & ring->mask];
  }
  /* Release the slots only after they are copied out (volatile order). */
  ring->tail = tail + (uint32_t)count;
  return count;
}

size_t kws_ring_skip(kws_ring* ring, size_t max_n) {
  const uint32_t tail = ring->tail;
  const uint32_t level = ring->head - tail;
  const size_t count = max_n < level ? max_n : level;
  ring->tail = tail + (uint32_t)count;
  return count;
}

size_t kws_ring_available(const kws_ring* ring) {
  return (size_t)(ring->head - ring->tail);
}

size_t kws_ring_space(const kws_ring* ring) {
  return (size_t)((ring->mask + 1u) - (ring->head - ring->tail));
}

uint32_t kws_ring_dropped(const kws_ring* ring) { return ring->dropped; }
