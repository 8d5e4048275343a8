/* Single-producer / single-consumer ring buffer of int16 audio samples.
 *
 * The producer is the PDM interrupt callback, the consumer is the main loop.
 * Neither side ever blocks or overwrites: when the ring is full the producer
 * drops the newest samples and counts them, because overwriting unread data
 * would race with a reader that is copying it out.
 *
 * Memory ordering (why no lock and no __DMB on the Cortex-M4):
 *  - Each index is written by exactly one side (head by the producer, tail by
 *    the consumer) and is an aligned 32-bit word, so a store to it is a single
 *    STR, which is single-copy atomic: the other side never sees a torn value.
 *  - The nRF52840 has one core and no data cache. An interrupt handler and the
 *    thread it preempts are the same observer, and the ARMv7-M memory model
 *    gives a single observer its accesses in program order, so a DMB adds
 *    nothing (ARM's "Cortex-M Programming Guide to Memory Barrier
 *    Instructions", AN321, says the same for M3/M4).
 *  - What *can* reorder is the compiler. The samples and the indices are all
 *    accessed through volatile lvalues, and C orders volatile accesses among
 *    themselves, so the samples are stored before head is published and read
 *    before tail is released.
 * This is not enough on a multi-core host with threads; the host only uses the
 * ring single-threaded (unit tests), which is all it needs.
 */
#ifndef KWS_RING_H_
#define KWS_RING_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  volatile int16_t* data; /* caller-owned storage of capacity samples */
  uint32_t mask;          /* capacity - 1; capacity is a power of two */
  /* Free-running counters: their difference is the fill level, so the whole
   * capacity is usable and "full" is not confused with "empty". */
  volatile uint32_t head;    /* samples ever written; producer only */
  volatile uint32_t tail;    /* samples ever read; consumer only */
  volatile uint32_t dropped; /* samples lost to overrun; producer only */
} kws_ring;

/* Returns 0, or -1 when capacity is not a power of two >= 2 (or too large). */
int kws_ring_init(kws_ring* ring, int16_t* storage, uint32_t capacity);

/* Producer side: copies as many of the n samples as fit, counts the rest as
 * dropped, and returns how many were stored. */
size_t kws_ring_write(kws_ring* ring, const int16_t* samples, size_t n);

/* Consumer side: copies up to max_n samples out, oldest first. */
size_t kws_ring_read(kws_ring* ring, int16_t* out, size_t max_n);

/* Consumer side: drops up to max_n samples unread; returns how many. */
size_t kws_ring_skip(kws_ring* ring, size_t max_n);

/* Samples waiting to be read (consumer side). */
size_t kws_ring_available(const kws_ring* ring);

/* Samples that can be written without loss (producer side). */
size_t kws_ring_space(const kws_ring* ring);

/* Total samples dropped since init. */
uint32_t kws_ring_dropped(const kws_ring* ring);

#ifdef __cplusplus
}
#endif

#endif /* KWS_RING_H_ */
