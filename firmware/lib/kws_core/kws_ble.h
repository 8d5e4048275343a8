/* Detections and statistics over Bluetooth LE (docs/ble.md): the GATT
 * service's identifiers and the binary values of its characteristics.
 *
 * Why binary: a notification carries at most ATT_MTU - 3 bytes, 20 at the
 * default MTU of 23, which stays unless the central asks for more (ArduinoBLE
 * grants up to 247 on this board), and ArduinoBLE cuts a longer value
 * silently. A detection is 19 bytes, so it arrives whole whatever the central
 * negotiates. The info characteristic is read (long reads are fine there) and
 * holds the HELLO line itself, so hosts parse it as they parse the serial one.
 *
 * Every value is little-endian and starts with KWS_BLE_FORMAT; a decoder
 * rejects a value of another format or length instead of guessing. */
#ifndef KWS_BLE_H_
#define KWS_BLE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_BLE_FORMAT 1

/* 128-bit UUIDs of our own (one random base, the service and each
 * characteristic in the first group). */
#define KWS_BLE_SERVICE_UUID "683a0001-e4f0-4353-abea-da2df2ddbc1e"
#define KWS_BLE_DETECTION_UUID "683a0002-e4f0-4353-abea-da2df2ddbc1e" /* notify */
#define KWS_BLE_INFO_UUID "683a0003-e4f0-4353-abea-da2df2ddbc1e"      /* read */
#define KWS_BLE_STATS_UUID "683a0004-e4f0-4353-abea-da2df2ddbc1e"     /* read */

/* Advertised (scan response) name: the prefix and the model id, e.g.
 * "nano-kws 46b4fb6c", so a host finds the board running a given model. */
#define KWS_BLE_NAME_PREFIX "nano-kws "

/* The radio's schedule. The board advertises every
 * KWS_BLE_ADVERTISING_INTERVAL_MS while no central is connected, and asks
 * the central for a connection interval in [MIN, MAX]; the central decides
 * (phones and BlueZ often grant 30-50 ms). A detection waits for the next
 * connection event: up to one interval more latency (docs/energy.md).
 * Multiples of 5 ms, so both convert exactly to the 0.625 ms and 1.25 ms
 * units the Bluetooth Core specification counts in. */
#define KWS_BLE_ADVERTISING_INTERVAL_MS 100
#define KWS_BLE_CONNECTION_INTERVAL_MIN_MS 50
#define KWS_BLE_CONNECTION_INTERVAL_MAX_MS 100

/* The info characteristic holds a HELLO line (kws_protocol.h). */
#define KWS_BLE_INFO_MAX 512u

typedef enum {
  KWS_BLE_OK = 0,
  KWS_BLE_ERR_LENGTH = 1, /* not the format's size */
  KWS_BLE_ERR_FORMAT = 2, /* first byte is not KWS_BLE_FORMAT */
  KWS_BLE_ERR_LABEL = 3   /* label index >= the model's labels */
} kws_ble_status;

/* ---- detection (notify) ----
 *  0 u8  format        1 u8  label index     2 u16 seq
 *  4 u32 t_ms (audio time, as DET)            8 u8  score 0..255
 *  9 u16 fe_us (saturated at 65535)          11 u32 inf_us  15 u32 step_us
 * seq counts every detection since start-up, sent or dropped, so a host sees
 * a gap where notifications were lost; it wraps at 65536. */
#define KWS_BLE_DETECTION_SIZE 19u

typedef struct {
  uint16_t seq;
  uint8_t label;
  uint8_t score;
  uint32_t t_ms;
  uint32_t fe_us, inf_us, step_us;
} kws_ble_detection;

/* Returns KWS_BLE_DETECTION_SIZE, or 0 if cap is smaller. */
size_t kws_ble_encode_detection(const kws_ble_detection* d, uint8_t* out,
                                size_t cap);
kws_ble_status kws_ble_decode_detection(const uint8_t* data, size_t n,
                                        uint32_t num_labels,
                                        kws_ble_detection* out);

/* ---- stats (read) ----
 *  0 u8  format  1 u8 input mode (0 microphone, 1 host stream)
 *  then u32 each: t_ms, steps, fe_us_avg, fe_us_max, inf_us_avg, inf_us_max,
 *  overruns, bad_frames, lines_dropped, free_ram (KWS_BLE_NOT_AVAILABLE when
 *  the device cannot tell), ble_notified, ble_dropped, ble_connections.
 * The serial STATS line's figures of the last 5 s period, plus the radio's. */
#define KWS_BLE_STATS_SIZE 54u
#define KWS_BLE_NOT_AVAILABLE 0xFFFFFFFFu

typedef struct {
  uint8_t mode;
  uint32_t t_ms, steps, fe_us_avg, fe_us_max, inf_us_avg, inf_us_max;
  uint32_t overruns, bad_frames, lines_dropped, free_ram;
  uint32_t ble_notified, ble_dropped, ble_connections;
} kws_ble_stats;

size_t kws_ble_encode_stats(const kws_ble_stats* s, uint8_t* out, size_t cap);
kws_ble_status kws_ble_decode_stats(const uint8_t* data, size_t n,
                                    kws_ble_stats* out);

/* ---- the device's side: sequence numbers and counters ----
 * A detection never waits for the radio: when no central is subscribed, or
 * the stack has no buffer free, it is dropped and counted. */
typedef struct {
  uint16_t next_seq;
  uint32_t notified, dropped, connections;
} kws_ble_counters;

void kws_ble_counters_init(kws_ble_counters* c);
/* Encodes the next detection (taking its sequence number) into out. */
size_t kws_ble_next_detection(kws_ble_counters* c, uint8_t label,
                              uint8_t score, uint32_t t_ms, uint32_t fe_us,
                              uint32_t inf_us, uint32_t step_us, uint8_t* out,
                              size_t cap);
/* After the attempt: sent nonzero if the stack took the notification. */
void kws_ble_count_sent(kws_ble_counters* c, int sent);

/* ---- the host's side: gaps in the sequence ---- */
typedef struct {
  int started;
  uint16_t next;
  uint32_t missed; /* detections the device numbered but the host never got */
} kws_ble_sequence;

void kws_ble_sequence_init(kws_ble_sequence* s);
/* Notes a received seq; returns how many were skipped just before it (0 for
 * the first one seen, and for a repeat, which is also not counted). */
uint32_t kws_ble_sequence_note(kws_ble_sequence* s, uint16_t seq);

#ifdef __cplusplus
}
#endif

#endif /* KWS_BLE_H_ */
