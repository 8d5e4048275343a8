#include "kws_ble.h"

#include <string.h>

static void put_u16(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t* p, uint32_t v) {
  put_u16(p, v);
  put_u16(p + 2, v >> 16);
}

static uint16_t get_u16(const uint8_t* p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)get_u16(p) | ((uint32_t)get_u16(p + 2) << 16);
}

size_t kws_ble_encode_detection(const kws_ble_detection* d, uint8_t* out,
                                size_t cap) {
  if (cap < KWS_BLE_DETECTION_SIZE) return 0;
  out[0] = KWS_BLE_FORMAT;
  out[1] = d->label;
  put_u16(out + 2, d->seq);
  put_u32(out + 4, d->t_ms);
  out[8] = d->score;
  put_u16(out + 9, d->fe_us > 0xFFFFu ? 0xFFFFu : d->fe_us);
  put_u32(out + 11, d->inf_us);
  put_u32(out + 15, d->step_us);
  return KWS_BLE_DETECTION_SIZE;
}

kws_ble_status kws_ble_decode_detection(const uint8_t* data, size_t n,
                                        uint32_t num_labels,
                                        kws_ble_detection* out) {
  if (n != KWS_BLE_DETECTION_SIZE) return KWS_BLE_ERR_LENGTH;
  if (data[0] != KWS_BLE_FORMAT) return KWS_BLE_ERR_FORMAT;
  if (data[1] >= num_labels) return KWS_BLE_ERR_LABEL;
  out->label = data[1];
  out->seq = get_u16(data + 2);
  out->t_ms = get_u32(data + 4);
  out->score = data[8];
  out->fe_us = get_u16(data + 9);
  out->inf_us = get_u32(data + 11);
  out->step_us = get_u32(data + 15);
  return KWS_BLE_OK;
}

/* The stats' u32 fields in wire order, so encoder and decoder share it. */
static uint32_t* stats_field(kws_ble_stats* s, size_t i) {
  uint32_t* const fields[] = {
      &s->t_ms,          &s->steps,      &s->fe_us_avg,   &s->fe_us_max,
      &s->inf_us_avg,    &s->inf_us_max, &s->overruns,    &s->bad_frames,
      &s->lines_dropped, &s->free_ram,   &s->ble_notified, &s->ble_dropped,
      &s->ble_connections};
  return fields[i];
}

#define KWS_BLE_STATS_FIELDS ((KWS_BLE_STATS_SIZE - 2u) / 4u)

size_t kws_ble_encode_stats(const kws_ble_stats* s, uint8_t* out,
                            size_t cap) {
  size_t i;
  kws_ble_stats copy;
  if (cap < KWS_BLE_STATS_SIZE) return 0;
  copy = *s;
  out[0] = KWS_BLE_FORMAT;
  out[1] = s->mode;
  for (i = 0; i < KWS_BLE_STATS_FIELDS; ++i) {
    put_u32(out + 2 + 4 * i, *stats_field(&copy, i));
  }
  return KWS_BLE_STATS_SIZE;
}

kws_ble_status kws_ble_decode_stats(const uint8_t* data, size_t n,
                                    kws_ble_stats* out) {
  size_t i;
  if (n != KWS_BLE_STATS_SIZE) return KWS_BLE_ERR_LENGTH;
  if (data[0] != KWS_BLE_FORMAT) return KWS_BLE_ERR_FORMAT;
  out->mode = data[1];
  for (i = 0; i < KWS_BLE_STATS_FIELDS; ++i) {
    *stats_field(out, i) = get_u32(data + 2 + 4 * i);
  }
  return KWS_BLE_OK;
}

void kws_ble_counters_init(kws_ble_counters* c) { memset(c, 0, sizeof(*c)); }

size_t kws_ble_next_detection(kws_ble_counters* c, uint8_t label,
                              uint8_t score, uint32_t t_ms, uint32_t fe_us,
                              uint32_t inf_us, uint32_t step_us, uint8_t* out,
                              size_t cap) {
  kws_ble_detection d;
  d.seq = c->next_seq++;
  d.label = label;
  d.score = score;
  d.t_ms = t_ms;
  d.fe_us = fe_us;
  d.inf_us = inf_us;
  d.step_us = step_us;
  return kws_ble_encode_detection(&d, out, cap);
}

void kws_ble_count_sent(kws_ble_counters* c, int sent) {
  if (sent) {
    ++c->notified;
  } else {
    ++c->dropped;
  }
}

void kws_ble_sequence_init(kws_ble_sequence* s) { memset(s, 0, sizeof(*s)); }

uint32_t kws_ble_sequence_note(kws_ble_sequence* s, uint16_t seq) {
  uint32_t skipped = 0;
  if (s->started) {
    if (seq == (uint16_t)(s->next - 1u)) return 0; /* a repeat */
    skipped = (uint16_t)(seq - s->next);
  }
  s->started = 1;
  s->next = (uint16_t)(seq + 1u);
  s->missed += skipped;
  return skipped;
}
