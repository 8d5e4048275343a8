/* Elapsed time on the board's wrapping millisecond clock (millis()).
 *
 * The firmware compares time stamps taken at different moments of its loop:
 * the loop reads the clock once at its top, but a detection stamped during
 * the 40-70 ms inference is later than that reading. Plain unsigned
 * subtraction of a later stamp wraps to about 4.29e9 ms, which made the LED
 * switch off the moment it was lit. Every elapsed-time decision goes through
 * kws_elapsed_ms instead. */
#ifndef KWS_CLOCK_H_
#define KWS_CLOCK_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds from since_ms to now_ms across a wrap of the uint32 clock;
 * 0 when since_ms is later than now_ms. "Later" means less than 2^31 ms
 * (24.8 days) ahead, so a difference up to that is exact. */
uint32_t kws_elapsed_ms(uint32_t now_ms, uint32_t since_ms);

#ifdef __cplusplus
}
#endif

#endif /* KWS_CLOCK_H_ */
