/* Unit tests of kws_core. Plain C with its own checks, so it builds anywhere
 * the core does. The last line printed is "N passed, N failed"; the exit
 * status is non-zero when anything failed. */
#include <stdio.h>
#include <string.h>

#include "kws_core.h"
#include "kws_mfcc_tables.h"

static int g_passed;
static int g_failed;

#define CHECK(cond)                                              \
  do {                                                           \
    if (cond) {                                                  \
      ++g_passed;                                                \
    } else {                                                     \
      ++g_failed;                                                \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                            \
  } while (0)
#define CHECK_EQ(a, b) CHECK((long long)(a) == (long long)(b))

/* ---------------- ring buffer ---------------- */

static void test_ring_init_rejects_bad_capacity(void) {
  kws_ring ring;
  int16_t storage[8];
  CHECK_EQ(kws_ring_init(&ring, storage, 0), -1);
  CHECK_EQ(kws_ring_init(&ring, storage, 1), -1);
  CHECK_EQ(kws_ring_init(&ring, storage, 6), -1);
  CHECK_EQ(kws_ring_init(&ring, NULL, 8), -1);
  CHECK_EQ(kws_ring_init(&ring, storage, 8), 0);
}

static void test_ring_empty_and_full(void) {
  kws_ring ring;
  int16_t storage[8], in[8], out[8];
  int i;
  for (i = 0; i < 8; ++i) in[i] = (int16_t)(i * 100 - 300);
  kws_ring_init(&ring, storage, 8);
  CHECK_EQ(kws_ring_available(&ring), 0);
  CHECK_EQ(kws_ring_read(&ring, out, 8), 0);
  CHECK_EQ(kws_ring_write(&ring, in, 8), 8);
  CHECK_EQ(kws_ring_available(&ring), 8);
  CHECK_EQ(kws_ring_dropped(&ring), 0);
  CHECK_EQ(kws_ring_write(&ring, in, 1), 0); /* full: dropped, not overwritten */
  CHECK_EQ(kws_ring_dropped(&ring), 1);
  CHECK_EQ(kws_ring_read(&ring, out, 8), 8);
  CHECK(memcmp(in, out, sizeof(in)) == 0);
  CHECK_EQ(kws_ring_available(&ring), 0);
}

static void test_ring_wraparound(void) {
  kws_ring ring;
  int16_t storage[8], out[8];
  int16_t next_in = 0, next_out = 0;
  int round, ok = 1;
  kws_ring_init(&ring, storage, 8);
  /* Odd-sized chunks walk the indices across the end many times. */
  for (round = 0; round < 100; ++round) {
    int16_t chunk[5];
    size_t i, got;
    for (i = 0; i < 5; ++i) chunk[i] = next_in++;
    CHECK_EQ(kws_ring_write(&ring, chunk, 5), 5);
    got = kws_ring_read(&ring, out, 5);
    if (got != 5) ok = 0;
    for (i = 0; i < got; ++i) {
      if (out[i] != next_out++) ok = 0;
    }
  }
  CHECK(ok);
  CHECK_EQ(kws_ring_dropped(&ring), 0);
}

static void test_ring_overrun_counts_partial_write(void) {
  kws_ring ring;
  int16_t storage[4], out[4];
  const int16_t in[6] = {1, 2, 3, 4, 5, 6};
  kws_ring_init(&ring, storage, 4);
  CHECK_EQ(kws_ring_write(&ring, in, 3), 3);
  CHECK_EQ(kws_ring_write(&ring, in + 3, 3), 1); /* 1 fits, 2 dropped */
  CHECK_EQ(kws_ring_dropped(&ring), 2);
  CHECK_EQ(kws_ring_read(&ring, out, 2), 2);
  CHECK_EQ(out[0], 1);
  CHECK_EQ(out[1], 2);
  CHECK_EQ(kws_ring_write(&ring, in + 4, 2), 2);
  CHECK_EQ(kws_ring_read(&ring, out, 4), 4);
  CHECK_EQ(out[0], 3);
  CHECK_EQ(out[1], 4);
  CHECK_EQ(out[2], 5);
  CHECK_EQ(out[3], 6);
  CHECK_EQ(kws_ring_dropped(&ring), 2);
}

static void test_ring_skip_and_space(void) {
  kws_ring ring;
  int16_t storage[4], out[4];
  const int16_t in[4] = {1, 2, 3, 4};
  kws_ring_init(&ring, storage, 4);
  CHECK_EQ(kws_ring_space(&ring), 4);
  kws_ring_write(&ring, in, 3);
  CHECK_EQ(kws_ring_space(&ring), 1);
  CHECK_EQ(kws_ring_skip(&ring, 2), 2);
  CHECK_EQ(kws_ring_space(&ring), 3);
  CHECK_EQ(kws_ring_read(&ring, out, 4), 1);
  CHECK_EQ(out[0], 3);
  CHECK_EQ(kws_ring_skip(&ring, 5), 0);
  CHECK_EQ(kws_ring_space(&ring), 4);
}

/* ---------------- recognizer ---------------- */

enum { kSilence, kUnknown, kYes, kNo, kLabels };
static const uint8_t kReportable[kLabels] = {0, 0, 1, 1};

static void init_rec(kws_recognizer* rec) {
  const kws_recognizer_config config = {1000u, 200u, 1500u, 3u};
  CHECK_EQ(kws_recognizer_init(rec, &config, kLabels, kReportable),
           KWS_REC_OK);
}

/* Feeds one result where label gets score and the others share the rest. */
static kws_recognition feed(kws_recognizer* rec, uint32_t t, int label,
                            uint8_t score) {
  uint8_t scores[kLabels];
  kws_recognition r;
  int i;
  for (i = 0; i < kLabels; ++i) {
    scores[i] = (uint8_t)(i == label ? score : (255 - score) / (kLabels - 1));
  }
  CHECK_EQ(kws_recognizer_process(rec, t, scores, &r), KWS_REC_OK);
  return r;
}

static void test_recognizer_rejects_bad_config(void) {
  kws_recognizer rec;
  kws_recognizer_config config = {1000u, 200u, 1500u, 3u};
  CHECK_EQ(kws_recognizer_init(&rec, &config, 0, kReportable), KWS_REC_ERR_ARG);
  CHECK_EQ(kws_recognizer_init(&rec, &config, KWS_RECOGNIZER_MAX_LABELS + 1,
                               kReportable),
           KWS_REC_ERR_ARG);
  config.minimum_count = 0u;
  CHECK_EQ(kws_recognizer_init(&rec, &config, kLabels, kReportable),
           KWS_REC_ERR_ARG);
  config.minimum_count = KWS_RECOGNIZER_MAX_HISTORY + 1u;
  CHECK_EQ(kws_recognizer_init(&rec, &config, kLabels, kReportable),
           KWS_REC_ERR_ARG);
  config.minimum_count = 3u;
  config.average_window_ms = 0u;
  CHECK_EQ(kws_recognizer_init(&rec, &config, kLabels, kReportable),
           KWS_REC_ERR_ARG);
}

static void test_recognizer_detects_once(void) {
  kws_recognizer rec;
  kws_recognition r;
  int detections = 0;
  uint32_t t;
  init_rec(&rec);
  for (t = 0; t <= 1000u; t += 100u) {
    r = feed(&rec, t, kYes, 250);
    if (r.detected) {
      ++detections;
      CHECK_EQ(r.top_index, kYes);
      CHECK_EQ(r.top_score, 250);
      /* 3 results and a 250 ms span (a quarter of the window) are needed. */
      CHECK_EQ(t, 300u);
    }
  }
  CHECK_EQ(detections, 1); /* suppressed while it lasts (same label) */
}

static void test_recognizer_minimum_count_and_span(void) {
  kws_recognizer rec;
  kws_recognition r;
  init_rec(&rec);
  /* Span long enough but only two results. */
  r = feed(&rec, 0u, kYes, 250);
  CHECK(!r.ready);
  r = feed(&rec, 900u, kYes, 250);
  CHECK(!r.ready);
  CHECK_EQ(r.top_index, -1);
  /* Three results, span 900 ms. */
  r = feed(&rec, 950u, kYes, 250);
  CHECK(r.ready);
  CHECK(r.detected);

  /* Enough results but they span less than 250 ms. */
  init_rec(&rec);
  feed(&rec, 0u, kYes, 250);
  feed(&rec, 100u, kYes, 250);
  r = feed(&rec, 249u, kYes, 250);
  CHECK(!r.ready);
  r = feed(&rec, 250u, kYes, 250);
  CHECK(r.ready);
}

static void test_recognizer_window_average(void) {
  kws_recognizer rec;
  kws_recognition r;
  const kws_recognizer_config config = {1000u, 100u, 0u, 1u};
  uint8_t scores[kLabels] = {0, 0, 0, 0};
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  scores[kYes] = 90;
  kws_recognizer_process(&rec, 0u, scores, &r);
  scores[kYes] = 200;
  kws_recognizer_process(&rec, 500u, scores, &r);
  /* Average of 90 and 200 is 145 (both within 1000 ms, bound inclusive). */
  scores[kYes] = 145;
  kws_recognizer_process(&rec, 1000u, scores, &r);
  CHECK_EQ(r.top_score, (90 + 200 + 145) / 3);
  /* At 1001 ms the result at 0 drops out: (200 + 145 + 0) / 3. */
  scores[kYes] = 0;
  kws_recognizer_process(&rec, 1001u, scores, &r);
  CHECK_EQ(r.top_score, (200 + 145 + 0) / 3);
  CHECK_EQ(r.top_index, kYes);
}

/* A window under 4 ms needs no span, so single results count (rule 3). */
static void test_recognizer_suppression(void) {
  kws_recognizer rec;
  kws_recognition r;
  const kws_recognizer_config config = {3u, 200u, 1500u, 1u};
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  CHECK(feed(&rec, 0u, kYes, 250).detected);
  CHECK(!feed(&rec, 1500u, kYes, 250).detected); /* not > 1500 ms yet */
  CHECK(feed(&rec, 1501u, kYes, 250).detected);
  /* A different keyword is not suppressed... */
  CHECK(feed(&rec, 1600u, kNo, 250).detected);
  /* ...and re-arms the first one. */
  r = feed(&rec, 1700u, kYes, 250);
  CHECK(r.detected);
  CHECK(r.is_new_command);
}

static void test_recognizer_threshold_is_strict(void) {
  kws_recognizer rec;
  const kws_recognizer_config config = {3u, 200u, 0u, 1u};
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  CHECK(!feed(&rec, 0u, kYes, 200).detected);
  CHECK(feed(&rec, 1000u, kYes, 201).detected);
}

/* Each label clears its own bar; the top label is still the highest average. */
static void test_recognizer_per_label_thresholds(void) {
  kws_recognizer rec;
  kws_recognition r;
  const kws_recognizer_config config = {3u, 200u, 0u, 1u};
  const uint8_t thresholds[kLabels] = {200u, 200u, 120u, 240u};
  uint8_t scores[kLabels] = {0, 0, 0, 0};
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  CHECK_EQ(rec.thresholds[kNo], 200); /* init: the single threshold */
  CHECK(!feed(&rec, 0u, kYes, 150).detected);
  CHECK_EQ(kws_recognizer_set_thresholds(&rec, thresholds), KWS_REC_OK);
  CHECK(!feed(&rec, 100u, kYes, 120).detected); /* strict */
  CHECK(feed(&rec, 200u, kYes, 121).detected);
  CHECK(!feed(&rec, 300u, kNo, 240).detected);
  CHECK(feed(&rec, 400u, kNo, 241).detected);
  /* "yes" above its own bar but below "no" is not reported: "no" is top and
   * under its bar, so nothing is a new command. */
  scores[kYes] = 125;
  scores[kNo] = 130;
  CHECK_EQ(kws_recognizer_process(&rec, 500u, scores, &r), KWS_REC_OK);
  CHECK_EQ(r.top_index, kNo);
  CHECK(!r.is_new_command && !r.detected);
  /* Non-keywords keep their bar too. */
  CHECK(!feed(&rec, 600u, kUnknown, 200).is_new_command);
  CHECK(feed(&rec, 700u, kUnknown, 201).is_new_command);
  /* A reset keeps the thresholds; NULL is rejected and changes nothing. */
  kws_recognizer_reset(&rec);
  CHECK_EQ(kws_recognizer_set_thresholds(&rec, NULL), KWS_REC_ERR_ARG);
  CHECK_EQ(kws_recognizer_set_thresholds(NULL, thresholds), KWS_REC_ERR_ARG);
  CHECK(feed(&rec, 800u, kYes, 121).detected);
}

static void test_recognizer_non_reportable(void) {
  kws_recognizer rec;
  kws_recognition r;
  const kws_recognizer_config config = {3u, 200u, 1500u, 1u};
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  r = feed(&rec, 0u, kSilence, 250);
  CHECK(r.is_new_command);
  CHECK(!r.detected);
  CHECK(feed(&rec, 200u, kYes, 250).detected);
  /* A confident "unknown" is a new command (not reported)... */
  r = feed(&rec, 400u, kUnknown, 250);
  CHECK(r.is_new_command && !r.detected);
  CHECK_EQ(r.top_index, kUnknown);
  /* ...so "yes" right after is new again, as upstream. */
  CHECK(feed(&rec, 600u, kYes, 250).detected);
}

static void test_recognizer_time_order(void) {
  kws_recognizer rec;
  kws_recognition r;
  uint8_t scores[kLabels] = {0, 0, 255, 0};
  init_rec(&rec);
  CHECK_EQ(kws_recognizer_process(&rec, 1000u, scores, &r), KWS_REC_OK);
  CHECK_EQ(kws_recognizer_process(&rec, 999u, scores, &r), KWS_REC_ERR_TIME);
  CHECK_EQ(kws_recognizer_process(&rec, 1000u, scores, &r), KWS_REC_OK);
  CHECK_EQ(rec.count, 2); /* the rejected one was not stored */
  /* Time stamps wrap modulo 2^32 like millis(). */
  init_rec(&rec);
  feed(&rec, 0xFFFFFF00u, kYes, 250);
  feed(&rec, 0xFFFFFF80u, kYes, 250);
  r = feed(&rec, 0x00000100u, kYes, 250);
  CHECK(r.detected);
}

static void test_recognizer_reset(void) {
  kws_recognizer rec;
  const kws_recognizer_config config = {3u, 200u, 1500u, 1u};
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  CHECK(feed(&rec, 0u, kYes, 250).detected);
  CHECK(!feed(&rec, 10u, kYes, 250).detected);
  kws_recognizer_reset(&rec);
  CHECK(feed(&rec, 20u, kYes, 250).detected);
  /* Earlier times are fine after a reset (a new clip). */
  kws_recognizer_reset(&rec);
  CHECK(feed(&rec, 0u, kYes, 250).detected);
}

static void test_recognizer_history_limit(void) {
  kws_recognizer rec;
  kws_recognition r;
  const kws_recognizer_config config = {100000u, 200u, 0u, 1u};
  uint32_t t;
  kws_recognizer_init(&rec, &config, kLabels, kReportable);
  for (t = 0; t < 100u; ++t) feed(&rec, t * 1000u, kYes, 100);
  CHECK_EQ(rec.count, KWS_RECOGNIZER_MAX_HISTORY);
  /* The oldest was dropped for the newest: 63 x 100 and one 255. */
  r = feed(&rec, 100000u, kYes, 255);
  CHECK_EQ(r.top_index, kYes);
  CHECK_EQ(r.top_score, (63 * 100 + 255) / 64);
}

static void test_scores_from_int8(void) {
  const int8_t out[5] = {-128, -127, 0, 126, 127};
  uint8_t scores[5];
  kws_scores_from_int8(out, 5, -128, scores);
  CHECK_EQ(scores[0], 0);
  CHECK_EQ(scores[1], 1);
  CHECK_EQ(scores[2], 128);
  CHECK_EQ(scores[3], 254);
  CHECK_EQ(scores[4], 255);
  kws_scores_from_int8(out, 5, 0, scores); /* clamps */
  CHECK_EQ(scores[0], 0);
  CHECK_EQ(scores[2], 0);
  CHECK_EQ(scores[4], 127);
}

/* ---------------- frames ---------------- */

typedef struct {
  int frames, crc, length, type;
  uint8_t last_type;
  uint16_t last_seq;
  uint16_t last_length;
  uint8_t last_payload[KWS_FRAME_MAX_PAYLOAD];
  uint16_t seqs[64];
  int num_seqs;
} events;

/* Feeds data in chunks of chunk bytes to a fresh decoder, collecting events
 * into ev (cleared first). */
static void decode_all(const uint8_t* data, size_t n, size_t chunk,
                       events* ev) {
  kws_frame_decoder decoder;
  kws_frame_decoder* const dec = &decoder;
  size_t off = 0;
  memset(ev, 0, sizeof(*ev));
  kws_frame_decoder_init(dec);
  do {
    const size_t take = n - off < chunk ? n - off : chunk;
    size_t sub = 0;
    kws_frame_status st;
    do {
      size_t used;
      kws_frame frame;
      st = kws_frame_decode(dec, data + off + sub, take - sub, &used, &frame);
      sub += used;
      switch (st) {
        case KWS_FRAME_OK:
          ev->frames++;
          ev->last_type = frame.type;
          ev->last_length = frame.length;
          memcpy(ev->last_payload, frame.payload, frame.length);
          if (ev->num_seqs < 64) ev->seqs[ev->num_seqs++] = frame.seq;
          break;
        case KWS_FRAME_ERR_CRC: ev->crc++; break;
        case KWS_FRAME_ERR_LENGTH: ev->length++; break;
        case KWS_FRAME_ERR_TYPE: ev->type++; break;
        case KWS_FRAME_NEED_MORE: break;
      }
      if (st != KWS_FRAME_OK && st != KWS_FRAME_NEED_MORE) {
        ev->last_seq = frame.seq;
      }
    } while (st != KWS_FRAME_NEED_MORE);
    off += take;
  } while (off < n);
}

static void test_crc_check_values(void) {
  const uint8_t check[] = "123456789";
  CHECK_EQ(kws_crc8(check, 9), 0xF4);
  CHECK_EQ(kws_crc16_ccitt(check, 9), 0x29B1);
  CHECK_EQ(kws_crc16_ccitt(check, 0), 0xFFFF);
}

static void test_frame_round_trip(void) {
  uint8_t payload[KWS_FRAME_MAX_PAYLOAD], buf[KWS_FRAME_MAX_SIZE];
  size_t chunk;
  int i;
  for (i = 0; i < (int)sizeof(payload); ++i) payload[i] = (uint8_t)(i * 7);
  for (chunk = 1; chunk <= KWS_FRAME_MAX_SIZE; chunk *= 4) {
    events ev;
    const size_t n = kws_frame_encode(KWS_FRAME_AUDIO, 0xBEEF, payload,
                                      sizeof(payload), buf, sizeof(buf));
    CHECK_EQ(n, KWS_FRAME_MAX_SIZE);
    decode_all(buf, n, chunk, &ev);
    CHECK_EQ(ev.frames, 1);
    CHECK_EQ(ev.seqs[0], 0xBEEF);
    CHECK_EQ(ev.last_type, KWS_FRAME_AUDIO);
    CHECK_EQ(ev.last_length, sizeof(payload));
    CHECK(memcmp(ev.last_payload, payload, sizeof(payload)) == 0);
  }
}

static void test_frame_empty_payload_and_encode_limits(void) {
  uint8_t buf[KWS_FRAME_MAX_SIZE + 1];
  events ev;
  size_t n = kws_frame_encode(KWS_FRAME_BYE, 7, NULL, 0, buf, sizeof(buf));
  CHECK_EQ(n, 9);
  decode_all(buf, n, 1, &ev);
  CHECK_EQ(ev.frames, 1);
  CHECK_EQ(ev.last_length, 0);
  CHECK_EQ(kws_frame_encode(KWS_FRAME_AUDIO, 0, buf, KWS_FRAME_MAX_PAYLOAD + 1,
                            buf, sizeof(buf)),
           0);
  CHECK_EQ(kws_frame_encode(KWS_FRAME_BYE, 0, NULL, 0, buf, 8), 0);
}

static size_t append_frame(uint8_t* out, uint8_t type, uint16_t seq,
                           const uint8_t* payload, size_t length) {
  return kws_frame_encode(type, seq, payload, length, out, KWS_FRAME_MAX_SIZE);
}

static void test_frame_garbage_before_and_between(void) {
  /* Garbage full of sync bytes: 0xA5, 0xA5 0x5A with bad types, etc. */
  static const uint8_t garbage[] = {0x00, 0xA5, 0xA5, 0x5A, 0xA5, 0x13,
                                    0x5A, 0xA5, 0x5A, 0x77, 0x01, 0x00};
  uint8_t stream[4096];
  const uint8_t id[4] = {1, 2, 3, 4};
  size_t n = 0, chunk;
  memcpy(stream + n, garbage, sizeof(garbage));
  n += sizeof(garbage);
  n += append_frame(stream + n, KWS_FRAME_CLIP_BEGIN, 1, id, 4);
  memcpy(stream + n, garbage, sizeof(garbage));
  n += sizeof(garbage);
  n += append_frame(stream + n, KWS_FRAME_CLIP_END, 2, id, 4);
  stream[n++] = 0xA5; /* a lone sync byte at the very end */
  for (chunk = 1; chunk <= n; chunk = chunk * 3 + 1) {
    events ev;
    decode_all(stream, n, chunk, &ev);
    CHECK_EQ(ev.frames, 2);
    CHECK_EQ(ev.seqs[0], 1);
    CHECK_EQ(ev.seqs[1], 2);
    CHECK_EQ(ev.type, 4); /* "A5 5A A5" and "A5 5A 77", twice */
    CHECK_EQ(ev.crc + ev.length, 0);
  }
}

static void test_frame_truncated_then_good(void) {
  uint8_t stream[256], payload[40];
  size_t n, first, chunk;
  memset(payload, 0x11, sizeof(payload));
  first = append_frame(stream, KWS_FRAME_AUDIO, 10, payload, sizeof(payload));
  n = first - 15; /* cut: the rest never arrives */
  n += append_frame(stream + n, KWS_FRAME_AUDIO, 11, payload, 8);
  for (chunk = 1; chunk <= n; chunk *= 2) {
    events ev;
    decode_all(stream, n, chunk, &ev);
    /* The cut frame swallows bytes of the next one until its length is
     * reached; its CRC fails and the rescan finds the good frame. */
    CHECK_EQ(ev.crc, 1);
    CHECK_EQ(ev.last_seq, 10);
    CHECK_EQ(ev.frames, 1);
    CHECK_EQ(ev.seqs[0], 11);
    CHECK_EQ(ev.last_length, 8);
  }
}

static void test_frame_crc_error(void) {
  static uint8_t copy[2 * KWS_FRAME_MAX_SIZE];
  uint8_t stream[64];
  const uint8_t version = 1;
  events ev;
  size_t n = append_frame(stream, KWS_FRAME_HELLO, 300, &version, 1);
  size_t bit;
  /* Every single-bit flip after the sync bytes is caught, and the good frame
   * after it is recovered. A flip that makes the length larger holds the
   * good frame back until that many bytes arrived: the zeros provide them. */
  for (bit = 16; bit < n * 8; ++bit) {
    size_t total;
    memset(copy, 0, sizeof(copy));
    memcpy(copy, stream, n);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    total = n + append_frame(copy + n, KWS_FRAME_HELLO, 301, &version, 1);
    decode_all(copy, total + KWS_FRAME_MAX_SIZE, 1, &ev);
    CHECK_EQ(ev.frames, 1);
    CHECK_EQ(ev.seqs[0], 301);
    CHECK(ev.crc + ev.type + ev.length >= 1);
  }
  stream[n - 1] ^= 0xFF;
  decode_all(stream, n, n, &ev);
  CHECK_EQ(ev.crc, 1);
  CHECK_EQ(ev.last_seq, 300);
}

static void test_frame_oversize_length(void) {
  uint8_t stream[64];
  const uint8_t id[4] = {9, 9, 9, 9};
  events ev;
  size_t n = 0;
  static const uint8_t bad[] = {0xA5, 0x5A, KWS_FRAME_AUDIO, 0x34, 0x12,
                                0x01, 0x04}; /* length 1025 */
  memcpy(stream, bad, sizeof(bad));
  n += sizeof(bad);
  n += append_frame(stream + n, KWS_FRAME_CLIP_END, 5, id, 4);
  decode_all(stream, n, 1, &ev);
  CHECK_EQ(ev.length, 1);
  CHECK_EQ(ev.last_seq, 0x1234);
  CHECK_EQ(ev.frames, 1); /* reported at the header, next frame intact */
  CHECK_EQ(ev.seqs[0], 5);
}

static void test_frame_hidden_in_rejected_payload(void) {
  /* A good frame inside the payload of a frame whose CRC fails is found by
   * the rescan, even when everything arrives in one call. */
  uint8_t inner[16], outer_payload[32], stream[64];
  const uint8_t id[4] = {7, 0, 0, 0};
  const size_t inner_n = append_frame(inner, KWS_FRAME_CLIP_BEGIN, 77, id, 4);
  size_t n;
  events ev;
  memset(outer_payload, 0, sizeof(outer_payload));
  memcpy(outer_payload + 3, inner, inner_n);
  n = append_frame(stream, KWS_FRAME_AUDIO, 76, outer_payload, 30);
  stream[n - 1] ^= 0x01;
  decode_all(stream, n, n, &ev);
  CHECK_EQ(ev.crc, 1);
  CHECK_EQ(ev.frames, 1);
  CHECK_EQ(ev.seqs[0], 77);
}

static void test_frame_payload_checks(void) {
  kws_frame f;
  const uint8_t p[6] = {0x01, 0x02, 0xFE, 0xFF, 0x00, 0x80};
  int16_t samples[3];
  f.payload = p;
  f.type = KWS_FRAME_HELLO; f.length = 1;
  CHECK_EQ(kws_frame_check_payload(&f), KWS_FRAME_OK);
  f.length = 0;
  CHECK_EQ(kws_frame_check_payload(&f), KWS_FRAME_ERR_LENGTH);
  f.type = KWS_FRAME_AUDIO; f.length = 6;
  CHECK_EQ(kws_frame_check_payload(&f), KWS_FRAME_OK);
  f.length = 5;
  CHECK_EQ(kws_frame_check_payload(&f), KWS_FRAME_ERR_LENGTH);
  f.type = KWS_FRAME_CLIP_BEGIN; f.length = 4;
  CHECK_EQ(kws_frame_check_payload(&f), KWS_FRAME_OK);
  CHECK_EQ(kws_frame_u32(&f, 0), 0xFFFE0201u);
  f.type = KWS_FRAME_BYE; f.length = 1;
  CHECK_EQ(kws_frame_check_payload(&f), KWS_FRAME_ERR_LENGTH);
  f.type = KWS_FRAME_AUDIO; f.length = 6;
  CHECK_EQ(kws_frame_samples(&f, samples, 3), 3);
  CHECK_EQ(samples[0], 0x0201);
  CHECK_EQ(samples[1], -2);
  CHECK_EQ(samples[2], -32768);
  CHECK_EQ(kws_frame_samples(&f, samples, 2), 2);
}

/* Feeds bytes to a decoder and counts the good frames of one type. */
static int feed_count(kws_frame_decoder* dec, const uint8_t* data, size_t n,
                      uint8_t type) {
  size_t off = 0;
  int found = 0;
  kws_frame_status st;
  do {
    size_t used;
    kws_frame frame;
    st = kws_frame_decode(dec, data + off, n - off, &used, &frame);
    off += used;
    if (st == KWS_FRAME_OK && frame.type == type) ++found;
  } while (st != KWS_FRAME_NEED_MORE);
  return found;
}

/* Issue 10: the host aborts after 100 bytes of a 1,024-byte AUDIO frame and
 * reconnects with a HELLO. */
/* A fresh decoder fed the first 100 bytes of a 1,024-byte AUDIO frame (a host
 * cut off mid-frame), and a HELLO frame in hello (16 bytes): its length. */
static size_t decoder_behind_cut_frame(kws_frame_decoder* dec, uint8_t* hello) {
  static uint8_t frame[KWS_FRAME_MAX_SIZE];
  uint8_t payload[KWS_FRAME_MAX_PAYLOAD];
  const uint8_t version = KWS_PROTOCOL_VERSION;
  memset(payload, 0x33, sizeof(payload));
  kws_frame_encode(KWS_FRAME_AUDIO, 1, payload, sizeof(payload), frame,
                   sizeof(frame));
  kws_frame_decoder_init(dec);
  CHECK_EQ(feed_count(dec, frame, 100, KWS_FRAME_HELLO), 0);
  return append_frame(hello, KWS_FRAME_HELLO, 2, &version, 1);
}

static void test_frame_cut_off_swallows_hellos_without_idle_check(void) {
  kws_frame_decoder dec;
  uint8_t hello[16];
  const size_t hello_n = decoder_behind_cut_frame(&dec, hello);
  int tries = 0, found = 0;
  while (!found && tries < 200) {
    ++tries;
    found = feed_count(&dec, hello, hello_n, KWS_FRAME_HELLO);
  }
  /* The cut frame waits for 933 more bytes: 93 HELLOs vanish into it. */
  CHECK_EQ(tries, 94);
}

static void test_frame_idle_drops_cut_off_frame(void) {
  kws_frame_decoder dec;
  uint8_t hello[16];
  const size_t hello_n = decoder_behind_cut_frame(&dec, hello);
  /* Around the wrap of the millisecond clock on purpose. */
  const uint32_t t0 = 0xFFFFFFC0u;
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0, 1), 0);
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0 + 50u, 0), 0);
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0 + KWS_FRAME_IDLE_MS, 0), 0);
  /* The device did not read (flow control): not the host's silence. */
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0 + 300u, 1), 0);
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0 + 300u + KWS_FRAME_IDLE_MS, 0), 0);
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0 + 301u + KWS_FRAME_IDLE_MS, 0), 1);
  CHECK_EQ(feed_count(&dec, hello, 0, KWS_FRAME_HELLO), 0);
  /* The next host's first HELLO is accepted. */
  CHECK_EQ(feed_count(&dec, hello, hello_n, KWS_FRAME_HELLO), 1);
  /* Nothing pending: idle never rejects. */
  CHECK_EQ(kws_frame_decoder_idle(&dec, t0 + 5000u, 0), 0);
}

static void test_frame_idle_rescans_a_hello_behind_the_cut(void) {
  /* The HELLO arrived before the 100 ms passed, inside the cut frame's
   * declared length: the rescan after the rejection finds it. */
  kws_frame_decoder dec;
  uint8_t hello[16];
  const size_t hello_n = decoder_behind_cut_frame(&dec, hello);
  CHECK_EQ(kws_frame_decoder_idle(&dec, 1000u, 1), 0);
  CHECK_EQ(feed_count(&dec, hello, hello_n, KWS_FRAME_HELLO), 0);
  CHECK_EQ(kws_frame_decoder_idle(&dec, 1040u, 1), 0);
  CHECK_EQ(kws_frame_decoder_idle(&dec, 1141u, 0), 1);
  CHECK_EQ(feed_count(&dec, hello, 0, KWS_FRAME_HELLO), 1);
}

static void test_frame_decoder_init_resets(void) {
  /* What the firmware does on the host timeout and when DTR drops. */
  kws_frame_decoder dec;
  uint8_t hello[16];
  const size_t hello_n = decoder_behind_cut_frame(&dec, hello);
  kws_frame_decoder_init(&dec);
  CHECK_EQ(feed_count(&dec, hello, hello_n, KWS_FRAME_HELLO), 1);
}

static void test_frame_after_bye_in_same_chunk(void) {
  /* BYE ends on a frame boundary, so the decoder holds nothing stale after
   * it; the frame behind it in the same USB packet must survive (why BYE
   * does not reset the decoder). */
  kws_frame_decoder dec;
  uint8_t stream[32];
  const uint8_t version = KWS_PROTOCOL_VERSION;
  size_t n = append_frame(stream, KWS_FRAME_BYE, 3, NULL, 0);
  n += append_frame(stream + n, KWS_FRAME_HELLO, 4, &version, 1);
  kws_frame_decoder_init(&dec);
  CHECK_EQ(feed_count(&dec, stream, n, KWS_FRAME_HELLO), 1);
}

/* ---------------- lines ---------------- */

/* Checks the " *HH\n" trailer of a finished line. */
static int line_crc_ok(const char* line, size_t len) {
  static const char kHex[] = "0123456789ABCDEF";
  uint8_t crc;
  if (len < 5 || line[len - 1] != '\n' || line[len - 5] != ' ' ||
      line[len - 4] != '*') {
    return 0;
  }
  crc = kws_crc8((const uint8_t*)line, len - 5);
  return line[len - 3] == kHex[crc >> 4] && line[len - 2] == kHex[crc & 15];
}

static void test_line_basic(void) {
  char buf[128];
  kws_line line;
  size_t n;
  const uint8_t scores[3] = {0, 17, 255};
  const char* labels[3] = {"silence", "un,known", "yes"};
  kws_line_begin(&line, buf, sizeof(buf), "DET");
  kws_line_add_uint(&line, "t_ms", 4294967295u);
  kws_line_add_str(&line, "label", "yes no*=");
  kws_line_add_int(&line, "idx", -2147483647 - 1);
  kws_line_add_u8_list(&line, "scores", scores, 3);
  kws_line_add_str_list(&line, "labels", labels, 3);
  kws_line_add_u8_list(&line, "empty", scores, 0);
  n = kws_line_end(&line);
  CHECK(!kws_line_truncated(&line));
  CHECK_EQ(n, strlen(buf));
  CHECK(strncmp(buf,
                "DET t_ms=4294967295 label=yes_no__ idx=-2147483648 "
                "scores=0,17,255 labels=silence,un_known,yes empty= *",
                n - 4) == 0);
  CHECK(line_crc_ok(buf, n));
  CHECK_EQ(kws_line_end(&line), 0); /* once only */
  CHECK(line_crc_ok(buf, n));
}

static void test_line_known_crc(void) {
  /* The example of docs/protocol.md, CRC included. */
  char buf[128];
  kws_line line;
  size_t n;
  const char* body =
      "DET t_ms=51240 label=yes idx=2 score=231 fe_us=712 inf_us=21480 "
      "step_us=22310";
  kws_line_begin(&line, buf, sizeof(buf), "DET");
  kws_line_add_int(&line, "t_ms", 51240);
  kws_line_add_str(&line, "label", "yes");
  kws_line_add_int(&line, "idx", 2);
  kws_line_add_int(&line, "score", 231);
  kws_line_add_int(&line, "fe_us", 712);
  kws_line_add_int(&line, "inf_us", 21480);
  kws_line_add_int(&line, "step_us", 22310);
  n = kws_line_end(&line);
  CHECK_EQ(n, strlen(body) + 5);
  CHECK(strncmp(buf, body, strlen(body)) == 0);
  CHECK(strcmp(buf + strlen(body), " *8A\n") == 0);
  CHECK(line_crc_ok(buf, n));
}

static void test_line_truncation(void) {
  char buf[64];
  kws_line line;
  size_t n, cap;
  /* Every capacity: never a byte past cap, always a valid line or nothing. */
  for (cap = 0; cap <= sizeof(buf); ++cap) {
    memset(buf, '#', sizeof(buf));
    kws_line_begin(&line, buf, cap, "STATS");
    kws_line_add_int(&line, "steps", 123456);
    kws_line_add_str(&line, "mode", "mic");
    kws_line_add_int(&line, "overruns", 0);
    n = kws_line_end(&line);
    /* "STATS *HH\n" and a NUL need 11 bytes. */
    CHECK(n < cap || (n == 0 && cap < 11));
    if (cap < sizeof(buf)) CHECK(buf[cap] == '#');
    if (n > 0) {
      CHECK(line_crc_ok(buf, n));
      CHECK_EQ(buf[n], '\0');
      /* All of "STATS steps=123456 mode=mic overruns=0 *HH\n" is 43. */
      CHECK_EQ(kws_line_truncated(&line), n < 43);
    }
  }
}

static void test_line_limits(void) {
  static char buf[1024];
  char value[300];
  kws_line line;
  size_t n;
  int i;
  memset(value, 'v', sizeof(value));
  value[200] = '\0';
  kws_line_begin(&line, buf, sizeof(buf), "ERR");
  kws_line_add_str(&line, "detail", value); /* 200: fits */
  CHECK(!kws_line_truncated(&line));
  value[200] = 'v';
  value[201] = '\0';
  kws_line_add_str(&line, "more", value); /* 201: dropped */
  CHECK(kws_line_truncated(&line));
  value[200] = '\0';
  for (i = 0; i < 5; ++i) kws_line_add_str(&line, "x", value);
  n = kws_line_end(&line);
  CHECK(n <= KWS_LINE_MAX);
  CHECK(line_crc_ok(buf, n));
  /* Bad tags and keys. */
  kws_line_begin(&line, buf, sizeof(buf), "Det");
  CHECK_EQ(kws_line_end(&line), 0);
  CHECK_EQ(buf[0], '\0');
  kws_line_begin(&line, buf, sizeof(buf), "");
  CHECK_EQ(kws_line_end(&line), 0);
  kws_line_begin(&line, buf, sizeof(buf), "ACK");
  kws_line_add_int(&line, "Seq", 1);
  kws_line_add_int(&line, "", 1);
  kws_line_add_int(&line, "seq", 1);
  n = kws_line_end(&line);
  CHECK(kws_line_truncated(&line));
  CHECK(strncmp(buf, "ACK seq=1 *", 11) == 0);
}

/* ---------------- clock ---------------- */

static void test_elapsed_ms(void) {
  CHECK_EQ(kws_elapsed_ms(1500u, 1000u), 500u);
  CHECK_EQ(kws_elapsed_ms(1000u, 1000u), 0u);
  CHECK_EQ(kws_elapsed_ms(20u, 0xFFFFFFF0u), 36u); /* across the wrap */
  CHECK_EQ(kws_elapsed_ms(0x7FFFFFFFu, 0u), 0x7FFFFFFFu);
  /* Issue 10: the loop read now at 1000 ms, the detection stamped the LED at
   * 1065 ms after its inference. Plain subtraction gives 4294967231 and the
   * LED went off at once; no time has passed. */
  CHECK_EQ(kws_elapsed_ms(1000u, 1065u), 0u);
  CHECK(!(kws_elapsed_ms(1000u, 1065u) >= 500u));
  CHECK_EQ(kws_elapsed_ms(5u, 0xFFFFFFFFu - 60u), 66u);
  CHECK_EQ(kws_elapsed_ms(0xFFFFFFFFu - 60u, 5u), 0u);
}

/* ---------------- line queue ---------------- */

/* Sends everything queued the way serial_out does, checking every packet;
 * appends the bytes to out and returns the size of the last packet. */
static size_t drain(kws_txq* q, uint8_t* out, size_t* out_n, size_t take) {
  uint8_t packet[KWS_TXQ_USB_PACKET + 1];
  size_t last = 0, n;
  int fits = 1;
  packet[KWS_TXQ_USB_PACKET] = 0xEE;
  while ((n = kws_txq_packet(q, packet, KWS_TXQ_USB_PACKET)) > 0) {
    const size_t taken = n < take ? n : take; /* the USB stack took fewer */
    fits = fits && n <= KWS_TXQ_USB_PACKET && packet[KWS_TXQ_USB_PACKET] == 0xEE;
    memcpy(out + *out_n, packet, taken);
    *out_n += taken;
    kws_txq_pop(q, taken);
    last = taken;
  }
  CHECK(fits);
  return last;
}

static void test_txq_lines_in_order_across_the_wrap(void) {
  uint8_t storage[100], out[4000];
  char expected[4000], line[80];
  kws_txq q;
  size_t out_n = 0, expected_n = 0;
  int i;
  CHECK_EQ(kws_txq_init(&q, NULL, 8), -1);
  CHECK_EQ(kws_txq_init(&q, storage, 0), -1);
  CHECK_EQ(kws_txq_init(&q, storage, sizeof(storage)), 0);
  for (i = 0; i < 60; ++i) {
    const size_t n = (size_t)(5 + (i * 37) % 70);
    memset(line, 'a' + i % 26, n - 1);
    line[n - 1] = '\n';
    CHECK_EQ(kws_txq_push(&q, line, n), 1);
    memcpy(expected + expected_n, line, n);
    expected_n += n;
    drain(&q, out, &out_n, i % 3 == 0 ? 17u : KWS_TXQ_USB_PACKET);
  }
  CHECK_EQ(out_n, expected_n);
  CHECK(memcmp(out, expected, expected_n) == 0);
  CHECK_EQ(kws_txq_dropped(&q), 0);
  CHECK_EQ(kws_txq_pending(&q), 0);
}

static void test_txq_drops_whole_lines_and_counts(void) {
  uint8_t storage[100], out[200];
  char line[60];
  kws_txq q;
  size_t out_n = 0;
  kws_txq_init(&q, storage, sizeof(storage));
  memset(line, 'x', sizeof(line));
  CHECK_EQ(kws_txq_push(&q, line, 60), 1);
  CHECK_EQ(kws_txq_push(&q, line, 41), 0); /* 40 bytes free: all or nothing */
  CHECK_EQ(kws_txq_push(&q, line, 40), 1);
  CHECK_EQ(kws_txq_push(&q, line, 1), 0);
  CHECK_EQ(kws_txq_push(&q, line, 0), 1); /* nothing to send, nothing lost */
  CHECK_EQ(kws_txq_dropped(&q), 2);
  CHECK_EQ(kws_txq_pending(&q), 100);
  drain(&q, out, &out_n, KWS_TXQ_USB_PACKET);
  CHECK_EQ(out_n, 100);
  CHECK_EQ(kws_txq_push(&q, line, 30), 1);
  kws_txq_clear(&q); /* the host closed the port */
  CHECK_EQ(kws_txq_pending(&q), 0);
  CHECK_EQ(kws_txq_dropped(&q), 2);
  CHECK_EQ(kws_txq_packet(&q, out, KWS_TXQ_USB_PACKET), 0);
}

static void test_txq_burst_never_ends_on_a_full_packet(void) {
  /* Issue 10: with no zero-length packet after a full one, a line of 64 or
   * 128 bytes could sit in the host until the next line. Every burst, of any
   * length, must end with a short packet. */
  uint8_t storage[1024], out[1024];
  char line[600];
  kws_txq q;
  size_t n;
  int short_end = 1, whole = 1;
  kws_txq_init(&q, storage, sizeof(storage));
  memset(line, 'y', sizeof(line));
  for (n = 1; n <= sizeof(line); ++n) {
    size_t out_n = 0;
    kws_txq_push(&q, line, n);
    short_end = short_end &&
                drain(&q, out, &out_n, KWS_TXQ_USB_PACKET) < KWS_TXQ_USB_PACKET;
    whole = whole && out_n == n;
  }
  CHECK(short_end);
  CHECK(whole);
  /* Two lines that together make 128 bytes. */
  {
    size_t out_n = 0;
    kws_txq_push(&q, line, 100);
    kws_txq_push(&q, line, 28);
    CHECK(drain(&q, out, &out_n, KWS_TXQ_USB_PACKET) < KWS_TXQ_USB_PACKET);
    CHECK_EQ(out_n, 128);
  }
  CHECK_EQ(kws_txq_dropped(&q), 0);
}

/* ---------------- features ---------------- */

static void test_scale_known_values(void) {
  /* multiplier/2^shift = 0.5: round half up. */
  const uint16_t raw[6] = {0, 1, 2, 3, 255, 65535};
  int8_t out[6];
  CHECK_EQ(kws_scale_features(raw, out, 6, 1, 1, -128), 0);
  CHECK_EQ(out[0], -128);
  CHECK_EQ(out[1], -127); /* 0.5 rounds up */
  CHECK_EQ(out[2], -127);
  CHECK_EQ(out[3], -126); /* 1.5 rounds up */
  CHECK_EQ(out[4], 0);    /* 127.5 -> 128 */
  CHECK_EQ(out[5], 127);  /* clamped */
  /* A typical model: scale 0.1017, zp -128: 10/(256*0.1017) ~ 0.3841. */
  {
    const int32_t shift = 30;
    const int32_t mult = 412419022; /* round(0.38410 * 2^30) */
    const uint16_t r[3] = {100, 670, 1000};
    int8_t o[3];
    kws_scale_features(r, o, 3, mult, shift, -128);
    CHECK_EQ(o[0], -128 + 38); /* 38.41 */
    CHECK_EQ(o[1], 127);       /* 257.3 - 128 clamps */
    CHECK_EQ(o[2], 127);
  }
  CHECK_EQ(kws_scale_features(raw, out, 6, -1, 1, 0), -1);
  CHECK_EQ(kws_scale_features(raw, out, 6, 1, 63, 0), -1);
  CHECK_EQ(kws_scale_features(raw, out, 6, 3, 0, -200), 0); /* shift 0 */
  CHECK_EQ(out[1], -128); /* -197 clamps low */
  CHECK_EQ(out[4], 127);  /* 565 clamps high */
  CHECK_EQ(out[2], -128);
}

static void test_scale_large_multiplier(void) {
  /* 65535 * (2^31 - 1) needs 64 bits. */
  const uint16_t raw[1] = {65535};
  int8_t out[1];
  kws_scale_features(raw, out, 1, 2147483647, 62, 0);
  CHECK_EQ(out[0], 0); /* 1.4e14 / 4.6e18 rounds to 0 */
  kws_scale_features(raw, out, 1, 2147483647, 40, -128);
  CHECK_EQ(out[0], 0); /* 127.998 rounds to 128 */
}

static void test_window(void) {
  int8_t storage[3 * 2], out[3 * 2];
  kws_feature_window w;
  int8_t s;
  CHECK_EQ(kws_window_init(&w, storage, 0, 2, 0), -1);
  CHECK_EQ(kws_window_init(&w, storage, 3, 2, -128), 0);
  kws_window_copy(&w, out);
  CHECK(out[0] == -128 && out[5] == -128);
  CHECK(!kws_window_full(&w));
  for (s = 1; s <= 5; ++s) {
    const int8_t slice[2] = {s, (int8_t)(-s)};
    kws_window_push(&w, slice);
    CHECK_EQ(kws_window_full(&w), s >= 3);
  }
  kws_window_copy(&w, out); /* slices 3, 4, 5 in time order */
  CHECK(out[0] == 3 && out[1] == -3 && out[2] == 4 && out[3] == -4 &&
        out[4] == 5 && out[5] == -5);
  kws_window_reset(&w, 7);
  CHECK(!kws_window_full(&w));
  kws_window_copy(&w, out);
  CHECK(out[0] == 7 && out[5] == 7);
}

/* ---------------- MFCC ---------------- */

#define MFCC_WORDS KWS_MFCC_STORAGE_WORDS(480, 512, 40, KWS_MFCC_FRAMES)
#define MFCC_VALUES (KWS_MFCC_FRAMES * 10)
static const kws_mfcc_tables kMfccTables = KWS_MFCC_TABLES_INIT;
static int32_t g_mfcc_storage[MFCC_WORDS];
static int32_t g_mfcc_storage2[MFCC_WORDS];
static int16_t g_clip[16000];

static uint32_t g_mfcc_rng = 1u;
static int16_t mfcc_noise(int32_t amplitude) {
  g_mfcc_rng = g_mfcc_rng * 1664525u + 1013904223u;
  return (int16_t)((int32_t)(g_mfcc_rng >> 16) % (2 * amplitude + 1) - amplitude);
}

/* The MFCCs of g_clip from a reset front end. */
static void mfcc_of_clip(kws_mfcc* m, int32_t* out) {
  kws_mfcc_reset(m);
  CHECK_EQ(kws_mfcc_add(m, g_clip, 16000), KWS_MFCC_FRAMES);
  kws_mfcc_window(m, out);
}

static long long max_abs_diff(const int32_t* a, const int32_t* b, size_t n) {
  long long worst = 0;
  size_t i;
  for (i = 0; i < n; ++i) {
    const long long d = (long long)a[i] - b[i];
    if ((d < 0 ? -d : d) > worst) worst = d < 0 ? -d : d;
  }
  return worst;
}

static void test_mfcc_init_rejects_bad_tables(void) {
  kws_mfcc m;
  kws_mfcc_tables t = kMfccTables;
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS), 0);
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS - 1), -1);
  CHECK_EQ(kws_mfcc_init(&m, &t, 0, g_mfcc_storage, MFCC_WORDS), -1);
  t.fft_length = 500; /* not a power of two */
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS), -1);
  t = kMfccTables;
  t.stride = 481; /* beyond the window */
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS), -1);
  t = kMfccTables;
  t.num_bins = 257; /* past the Nyquist bin */
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS), -1);
  t = kMfccTables;
  t.num_mel = KWS_MFCC_MAX_MEL + 1;
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS), -1);
  t = kMfccTables;
  t.dct = NULL;
  CHECK_EQ(kws_mfcc_init(&m, &t, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS), -1);
}

/* A frame after 480 samples, then one per 320, however the samples come. */
static void test_mfcc_frame_timing(void) {
  kws_mfcc m;
  int16_t zeros[480];
  int i;
  memset(zeros, 0, sizeof zeros);
  kws_mfcc_init(&m, &kMfccTables, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS);
  CHECK_EQ(kws_mfcc_add(&m, zeros, 479), 0);
  CHECK_EQ(kws_mfcc_add(&m, zeros, 1), 1);
  CHECK_EQ(kws_mfcc_add(&m, zeros, 319), 0);
  CHECK_EQ(kws_mfcc_add(&m, zeros, 1), 1);
  CHECK_EQ(kws_mfcc_add(&m, zeros, 480), 1); /* 320 complete one, 160 wait */
  CHECK_EQ(kws_mfcc_add(&m, zeros, 160), 1);
  CHECK(!kws_mfcc_full(&m));
  for (i = 0; i < 44; ++i) kws_mfcc_add(&m, zeros, 320);
  CHECK(!kws_mfcc_full(&m)); /* 48 frames */
  CHECK_EQ(kws_mfcc_add(&m, zeros, 320), 1);
  CHECK(kws_mfcc_full(&m));
  kws_mfcc_reset(&m);
  CHECK(!kws_mfcc_full(&m));
  CHECK_EQ(kws_mfcc_add(&m, zeros, 400), 0); /* the partial frame is gone */
}

/* Silence: every log mel is ln(1e-6), so c0 = 40 ln(1e-6) sqrt(2/40) and
 * the rest 0; a reset front end (no frame yet) gives the same. */
static void test_mfcc_silence(void) {
  static int32_t out[MFCC_VALUES], fresh[MFCC_VALUES];
  kws_mfcc m;
  const int32_t c0 = -8098263; /* -123.5691 * 2^16 */
  int i, worst = 0;
  kws_mfcc_init(&m, &kMfccTables, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS);
  kws_mfcc_window(&m, fresh);
  memset(g_clip, 0, sizeof g_clip);
  mfcc_of_clip(&m, out);
  CHECK_EQ(max_abs_diff(out, fresh, MFCC_VALUES), 0);
  for (i = 0; i < MFCC_VALUES; ++i) {
    const int32_t expected = i % 10 == 0 ? c0 : 0;
    const int32_t d = out[i] > expected ? out[i] - expected : expected - out[i];
    if (d > worst) worst = d;
  }
  CHECK(worst < 20); /* 3e-4 */
}

/* Any chunking gives the same bits as one call; reset forgets the past. */
static void test_mfcc_streaming_and_reset(void) {
  static int32_t whole[MFCC_VALUES], chunked[MFCC_VALUES];
  kws_mfcc m;
  size_t at = 0, chunk = 1;
  int i;
  for (i = 0; i < 16000; ++i) g_clip[i] = mfcc_noise(i < 8000 ? 3000 : 200);
  kws_mfcc_init(&m, &kMfccTables, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS);
  mfcc_of_clip(&m, whole);
  kws_mfcc_add(&m, g_clip, 5000); /* history the reset must drop */
  kws_mfcc_reset(&m);
  while (at < 16000) {
    const size_t take = 16000 - at < chunk ? 16000 - at : chunk;
    kws_mfcc_add(&m, g_clip + at, take);
    at += take;
    chunk = chunk * 7 % 1013 + 1;
  }
  kws_mfcc_window(&m, chunked);
  CHECK_EQ(max_abs_diff(whole, chunked, MFCC_VALUES), 0);
  /* a second state in other storage agrees: nothing is shared */
  {
    kws_mfcc other;
    CHECK_EQ(kws_mfcc_init(&other, &kMfccTables, KWS_MFCC_FRAMES,
                           g_mfcc_storage2, MFCC_WORDS), 0);
    mfcc_of_clip(&other, chunked);
    CHECK_EQ(max_abs_diff(whole, chunked, MFCC_VALUES), 0);
  }
}

/* Peak normalization: x and 8x give the same MFCCs up to rounding, from
 * quiet noise up to a full-scale square wave (an overflow would not). */
static void test_mfcc_scale_invariance(void) {
  static int32_t quiet[MFCC_VALUES], loud[MFCC_VALUES];
  kws_mfcc m;
  int i, round;
  kws_mfcc_init(&m, &kMfccTables, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS);
  for (round = 0; round < 2; ++round) {
    for (i = 0; i < 16000; ++i) {
      g_clip[i] = round == 0 ? mfcc_noise(500)
                             : (int16_t)((i / 23) % 2 ? 4095 : -4096);
    }
    mfcc_of_clip(&m, quiet);
    for (i = 0; i < 16000; ++i) g_clip[i] = (int16_t)(g_clip[i] * 8);
    mfcc_of_clip(&m, loud);
    CHECK(max_abs_diff(quiet, loud, MFCC_VALUES) < 200); /* 0.003 */
  }
  CHECK(loud[0] > -60 * 65536); /* far above silence (-123.6): no wrap */
}

/* A clip below zero throughout is normalized by 1 LSB: -x gives what x does
 * when x's maximum is 1 (|X| does not see the sign; the windowing's floor
 * rounding does, by one unit). */
static void test_mfcc_negative_clip(void) {
  static int32_t pos[MFCC_VALUES], neg[MFCC_VALUES];
  kws_mfcc m;
  int i;
  kws_mfcc_init(&m, &kMfccTables, KWS_MFCC_FRAMES, g_mfcc_storage, MFCC_WORDS);
  for (i = 0; i < 16000; ++i) g_clip[i] = (int16_t)(mfcc_noise(1) != 0);
  mfcc_of_clip(&m, pos);
  for (i = 0; i < 16000; ++i) g_clip[i] = (int16_t)-g_clip[i];
  mfcc_of_clip(&m, neg);
  CHECK(max_abs_diff(pos, neg, MFCC_VALUES) < 10); /* 1.5e-4 */
  for (i = 0; i < 16000; ++i) g_clip[i] = (int16_t)(-1000 - (i % 7) * 100);
  mfcc_of_clip(&m, neg);
  CHECK(neg[0] > 10 * 65536); /* unscaled int16 units: log mel ~ 12 */
}

static void test_mfcc_quantize(void) {
  /* multiplier / 2^shift = 2^-16: one int8 step per 1.0 of MFCC */
  const int32_t q[8] = {0, 32768, 32767, -32768, -98304, 65536 * 200,
                        -65536 * 300, 2147483647};
  int8_t out[8];
  CHECK_EQ(kws_mfcc_quantize(q, out, 8, 1073741824, 46, 10), 0);
  CHECK_EQ(out[0], 10);
  CHECK_EQ(out[1], 11);  /* 0.5 rounds up */
  CHECK_EQ(out[2], 10);  /* 0.49998 rounds down */
  CHECK_EQ(out[3], 10);  /* -0.5 rounds up, to 0 */
  CHECK_EQ(out[4], 9);   /* -1.5 rounds up, to -1 */
  CHECK_EQ(out[5], 127); /* saturates */
  CHECK_EQ(out[6], -128);
  CHECK_EQ(out[7], 127);
  CHECK_EQ(kws_mfcc_quantize(q, out, 8, 3, 0, -5), 0); /* shift 0 */
  CHECK_EQ(out[0], -5);
  CHECK_EQ(out[1], 127);
  CHECK_EQ(kws_mfcc_quantize(q, out, 8, -1, 10, 0), -1);
  CHECK_EQ(kws_mfcc_quantize(q, out, 8, 1, 63, 0), -1);
  /* the MLPerf model's input: scale 0.5847, zero point 83 */
  {
    const int32_t mfcc[3] = {-8098375, 0, 1000000};
    int8_t o[3];
    kws_mfcc_quantize(mfcc, o, 3, 1836388716, 46, 83); /* 1/(0.5847 2^16) */
    CHECK_EQ(o[0], -128); /* -211.3 + 83 saturates */
    CHECK_EQ(o[1], 83);
    CHECK_EQ(o[2], 109); /* 26.10 + 83 */
  }
}

/* ---------------- Bluetooth LE values ---------------- */

static void test_ble_detection_known_bytes(void) {
  /* The layout of docs/ble.md, byte for byte: a change breaks every host. */
  const kws_ble_detection d = {0x0102, 3, 200, 0x11223344u, 70000u,
                               0x0A0B0C0Du, 0x01020304u};
  const uint8_t expected[KWS_BLE_DETECTION_SIZE] = {
      1,    3,    0x02, 0x01, 0x44, 0x33, 0x22, 0x11, 200, 0xFF,
      0xFF, 0x0D, 0x0C, 0x0B, 0x0A, 0x04, 0x03, 0x02, 0x01};
  uint8_t out[32];
  kws_ble_detection back;
  CHECK_EQ(kws_ble_encode_detection(&d, out, KWS_BLE_DETECTION_SIZE - 1), 0);
  CHECK_EQ(kws_ble_encode_detection(&d, out, sizeof(out)),
           KWS_BLE_DETECTION_SIZE);
  CHECK(memcmp(out, expected, sizeof(expected)) == 0);
  CHECK_EQ(kws_ble_decode_detection(out, KWS_BLE_DETECTION_SIZE, 4, &back),
           KWS_BLE_OK);
  CHECK_EQ(back.seq, 0x0102);
  CHECK_EQ(back.label, 3);
  CHECK_EQ(back.score, 200);
  CHECK_EQ(back.t_ms, 0x11223344u);
  CHECK_EQ(back.fe_us, 0xFFFF); /* saturated, not wrapped */
  CHECK_EQ(back.inf_us, 0x0A0B0C0Du);
  CHECK_EQ(back.step_us, 0x01020304u);
}

static void test_ble_detection_rejects(void) {
  const kws_ble_detection d = {7, 3, 9, 1, 2, 3, 4};
  uint8_t out[KWS_BLE_DETECTION_SIZE + 1];
  kws_ble_detection back;
  kws_ble_encode_detection(&d, out, sizeof(out));
  CHECK_EQ(kws_ble_decode_detection(out, KWS_BLE_DETECTION_SIZE, 3, &back),
           KWS_BLE_ERR_LABEL);
  CHECK_EQ(kws_ble_decode_detection(out, KWS_BLE_DETECTION_SIZE - 1, 4, &back),
           KWS_BLE_ERR_LENGTH);
  CHECK_EQ(kws_ble_decode_detection(out, KWS_BLE_DETECTION_SIZE + 1, 4, &back),
           KWS_BLE_ERR_LENGTH);
  CHECK_EQ(kws_ble_decode_detection(out, 0, 4, &back), KWS_BLE_ERR_LENGTH);
  out[0] = 2;
  CHECK_EQ(kws_ble_decode_detection(out, KWS_BLE_DETECTION_SIZE, 4, &back),
           KWS_BLE_ERR_FORMAT);
}

static void test_ble_stats_round_trip(void) {
  kws_ble_stats s, back;
  uint8_t out[KWS_BLE_STATS_SIZE];
  memset(&s, 0, sizeof(s));
  memset(&back, 0xAA, sizeof(back));
  s.mode = 1;
  s.t_ms = 1;
  s.steps = 2;
  s.fe_us_avg = 3;
  s.fe_us_max = 4;
  s.inf_us_avg = 5;
  s.inf_us_max = 6;
  s.overruns = 7;
  s.bad_frames = 8;
  s.lines_dropped = 9;
  s.free_ram = KWS_BLE_NOT_AVAILABLE;
  s.ble_notified = 11;
  s.ble_dropped = 12;
  s.ble_connections = 0x0D0E0F10u;
  CHECK_EQ(kws_ble_encode_stats(&s, out, sizeof(out) - 1), 0);
  CHECK_EQ(kws_ble_encode_stats(&s, out, sizeof(out)), KWS_BLE_STATS_SIZE);
  CHECK_EQ(out[0], KWS_BLE_FORMAT);
  CHECK_EQ(out[1], 1);
  CHECK_EQ(out[2], 1); /* t_ms first */
  CHECK_EQ(out[KWS_BLE_STATS_SIZE - 4], 0x10); /* ble_connections last, LE */
  CHECK_EQ(out[KWS_BLE_STATS_SIZE - 1], 0x0D);
  CHECK_EQ(kws_ble_decode_stats(out, sizeof(out), &back), KWS_BLE_OK);
  CHECK_EQ(back.mode, 1); /* apart: padding follows it */
  CHECK(memcmp(&s.t_ms, &back.t_ms,
               sizeof(s) - offsetof(kws_ble_stats, t_ms)) == 0);
  CHECK_EQ(kws_ble_decode_stats(out, sizeof(out) - 1, &back),
           KWS_BLE_ERR_LENGTH);
  out[0] = 0;
  CHECK_EQ(kws_ble_decode_stats(out, sizeof(out), &back), KWS_BLE_ERR_FORMAT);
}

static void test_ble_counters_and_sequence(void) {
  kws_ble_counters c;
  kws_ble_sequence host;
  kws_ble_detection d;
  uint8_t out[KWS_BLE_DETECTION_SIZE];
  int i;
  kws_ble_counters_init(&c);
  kws_ble_sequence_init(&host);
  for (i = 0; i < 5; ++i) {
    CHECK_EQ(kws_ble_next_detection(&c, 1, 2, 3, 4, 5, 6, out, sizeof(out)),
             KWS_BLE_DETECTION_SIZE);
    kws_ble_count_sent(&c, i != 2 && i != 3); /* two lost on the way */
    if (i == 2 || i == 3) continue;
    CHECK_EQ(kws_ble_decode_detection(out, sizeof(out), 2, &d), KWS_BLE_OK);
    CHECK_EQ(d.seq, i);
    CHECK_EQ(kws_ble_sequence_note(&host, d.seq), i == 4 ? 2 : 0);
  }
  CHECK_EQ(c.notified, 3);
  CHECK_EQ(c.dropped, 2);
  CHECK_EQ(host.missed, 2);
  CHECK_EQ(kws_ble_sequence_note(&host, 4), 0); /* a repeat: no gap */
  CHECK_EQ(host.missed, 2);
  /* across the wrap */
  kws_ble_sequence_init(&host);
  CHECK_EQ(kws_ble_sequence_note(&host, 65534), 0);
  CHECK_EQ(kws_ble_sequence_note(&host, 1), 2);
  CHECK_EQ(host.missed, 2);
}

static void test_ble_decoders_survive_garbage(void) {
  /* Deterministic fuzz (also under QEMU): random lengths and bytes, and
   * single-byte mutations of good values, never crash (ASan/UBSan on the host)
   * and decode only values of the right size and format. */
  uint32_t state = 12345u;
  uint8_t buf[KWS_BLE_STATS_SIZE + 8];
  kws_ble_detection d;
  kws_ble_stats s;
  int round, accepted = 0;
  for (round = 0; round < 20000; ++round) {
    size_t n, i;
    kws_ble_status st_d, st_s;
    state = state * 1664525u + 1013904223u;
    n = (state >> 24) % sizeof(buf);
    if (round % 4 == 0) n = KWS_BLE_DETECTION_SIZE;
    if (round % 4 == 1) n = KWS_BLE_STATS_SIZE;
    for (i = 0; i < n; ++i) {
      state = state * 1664525u + 1013904223u;
      buf[i] = (uint8_t)(state >> 24);
    }
    if (round % 2 == 0 && n > 0) buf[0] = KWS_BLE_FORMAT;
    st_d = kws_ble_decode_detection(buf, n, 12, &d);
    st_s = kws_ble_decode_stats(buf, n, &s);
    if (st_d == KWS_BLE_OK) {
      ++accepted;
      CHECK(n == KWS_BLE_DETECTION_SIZE && buf[0] == KWS_BLE_FORMAT);
      CHECK(d.label < 12);
    }
    if (st_s == KWS_BLE_OK) {
      CHECK(n == KWS_BLE_STATS_SIZE && buf[0] == KWS_BLE_FORMAT);
    }
  }
  CHECK(accepted > 0); /* the fuzz reached the accepting path */
}

int main(void) {
  test_ring_init_rejects_bad_capacity();
  test_ring_empty_and_full();
  test_ring_wraparound();
  test_ring_overrun_counts_partial_write();
  test_ring_skip_and_space();
  test_recognizer_rejects_bad_config();
  test_recognizer_detects_once();
  test_recognizer_minimum_count_and_span();
  test_recognizer_window_average();
  test_recognizer_suppression();
  test_recognizer_threshold_is_strict();
  test_recognizer_per_label_thresholds();
  test_recognizer_non_reportable();
  test_recognizer_time_order();
  test_recognizer_reset();
  test_recognizer_history_limit();
  test_scores_from_int8();
  test_crc_check_values();
  test_frame_round_trip();
  test_frame_empty_payload_and_encode_limits();
  test_frame_garbage_before_and_between();
  test_frame_truncated_then_good();
  test_frame_crc_error();
  test_frame_oversize_length();
  test_frame_hidden_in_rejected_payload();
  test_frame_payload_checks();
  test_frame_cut_off_swallows_hellos_without_idle_check();
  test_frame_idle_drops_cut_off_frame();
  test_frame_idle_rescans_a_hello_behind_the_cut();
  test_frame_decoder_init_resets();
  test_frame_after_bye_in_same_chunk();
  test_line_basic();
  test_line_known_crc();
  test_line_truncation();
  test_line_limits();
  test_elapsed_ms();
  test_txq_lines_in_order_across_the_wrap();
  test_txq_drops_whole_lines_and_counts();
  test_txq_burst_never_ends_on_a_full_packet();
  test_scale_known_values();
  test_scale_large_multiplier();
  test_window();
  test_mfcc_init_rejects_bad_tables();
  test_mfcc_frame_timing();
  test_mfcc_silence();
  test_mfcc_streaming_and_reset();
  test_mfcc_scale_invariance();
  test_mfcc_negative_clip();
  test_mfcc_quantize();
  test_ble_detection_known_bytes();
  test_ble_detection_rejects();
  test_ble_stats_round_trip();
  test_ble_counters_and_sequence();
  test_ble_decoders_survive_garbage();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
