/* kws_core: the portable, testable part of the nano-kws firmware. Plain C99,
 * no Arduino and no TFLM, so the same code runs on the board, in QEMU and on
 * the host (unit tests and the Python virtual board via ctypes). */
#ifndef KWS_CORE_H_
#define KWS_CORE_H_

#include "kws_ble.h"
#include "kws_clock.h"
#include "kws_features.h"
#include "kws_mfcc.h"
#include "kws_protocol.h"
#include "kws_recognizer.h"
#include "kws_ring.h"
#include "kws_txq.h"

#endif /* KWS_CORE_H_ */
