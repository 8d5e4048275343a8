/* Runs fixed pseudo-random inputs through every part of kws_core and prints
 * each output as a text line. It is built for the host and for the Cortex-M4
 * (run in QEMU); the two outputs must be byte-identical, which catches
 * anything that depends on int/long size, char signedness, shifts of negative
 * numbers or the C library. No input files: the inputs come from the PRNG. */
#include <stdio.h>
#include <string.h>

#include "kws_core.h"
#include "kws_mfcc_tables.h"

static uint32_t g_state = 0x12345678u;

/* xorshift32: the same sequence on every platform. */
static uint32_t rnd(void) {
  g_state ^= g_state << 13;
  g_state ^= g_state >> 17;
  g_state ^= g_state << 5;
  return g_state;
}

static uint32_t rnd_below(uint32_t n) { return rnd() % n; }

static void run_ring(void) {
  static int16_t storage[64];
  int16_t buf[100];
  kws_ring ring;
  uint32_t checksum = 0u;
  int step;
  kws_ring_init(&ring, storage, 64);
  for (step = 0; step < 200; ++step) {
    const size_t n = rnd_below(40);
    size_t i, done;
    for (i = 0; i < n; ++i) buf[i] = (int16_t)rnd();
    if (rnd_below(2) == 0u) {
      done = kws_ring_write(&ring, buf, n);
    } else if (rnd_below(8) == 0u) {
      done = kws_ring_skip(&ring, n);
    } else {
      done = kws_ring_read(&ring, buf, n);
      for (i = 0; i < done; ++i) checksum = checksum * 31u + (uint16_t)buf[i];
    }
    printf("ring %d n=%lu done=%lu avail=%lu space=%lu dropped=%lu sum=%08lx\n",
           step, (unsigned long)n, (unsigned long)done,
           (unsigned long)kws_ring_available(&ring),
           (unsigned long)kws_ring_space(&ring),
           (unsigned long)kws_ring_dropped(&ring), (unsigned long)checksum);
  }
}

static void run_recognizer(void) {
  static kws_recognizer rec;
  const kws_recognizer_config config = {1000u, 200u, 1500u, 3u};
  const uint8_t reportable[5] = {0, 0, 1, 1, 1};
  const uint8_t thresholds[5] = {230u, 200u, 150u, 210u, 180u};
  uint32_t t = 0u;
  int step, label = 0;
  kws_recognizer_init(&rec, &config, 5, reportable);
  for (step = 0; step < 1500; ++step) {
    int8_t raw[5];
    uint8_t scores[5];
    kws_recognition r;
    kws_rec_status st;
    int i;
    if (rnd_below(40) == 0u) label = (int)rnd_below(5);
    for (i = 0; i < 5; ++i) {
      const int32_t base = i == label ? 90 : -110;
      raw[i] = (int8_t)(base + (int32_t)rnd_below(60) - 30);
    }
    kws_scores_from_int8(raw, 5, -128, scores);
    /* Mostly 20 ms steps, sometimes a gap, rarely a step back. */
    t += 20u + (rnd_below(10) == 0u ? rnd_below(700) : 0u);
    if (rnd_below(100) == 0u) t -= 50u;
    if (rnd_below(500) == 0u) kws_recognizer_reset(&rec);
    /* The second half runs with per-label thresholds. */
    if (step == 750) kws_recognizer_set_thresholds(&rec, thresholds);
    st = kws_recognizer_process(&rec, t, scores, &r);
    printf("rec %d t=%lu st=%d ready=%d top=%d score=%u new=%d det=%d\n", step,
           (unsigned long)t, (int)st, r.ready, r.top_index,
           (unsigned)r.top_score, r.is_new_command, r.detected);
    if (st != KWS_REC_OK) t += 50u;
  }
}

/* Decodes n bytes (n == 0: what a rescan finds) and prints every event. */
static void decode_print(kws_frame_decoder* dec, const uint8_t* data,
                         size_t n) {
  size_t off = 0;
  kws_frame_status st;
  do {
    kws_frame frame;
    size_t used;
    st = kws_frame_decode(dec, data + off, n - off, &used, &frame);
    off += used;
    if (st == KWS_FRAME_OK) {
      printf("frame ok type=%u seq=%u len=%u crc=%04x check=%d\n",
             (unsigned)frame.type, (unsigned)frame.seq, (unsigned)frame.length,
             (unsigned)kws_crc16_ccitt(frame.payload, frame.length),
             (int)kws_frame_check_payload(&frame));
    } else if (st != KWS_FRAME_NEED_MORE) {
      printf("frame err=%d type=%u seq=%u len=%u\n", (int)st,
             (unsigned)frame.type, (unsigned)frame.seq, (unsigned)frame.length);
    }
  } while (st != KWS_FRAME_NEED_MORE);
}

static void run_frames(void) {
  static uint8_t stream[200000];
  static kws_frame_decoder dec;
  size_t n = 0, off = 0;
  uint32_t now_ms = 0xFFFFF000u; /* crosses the clock's wrap */
  int frame_no;
  for (frame_no = 0; frame_no < 300; ++frame_no) {
    uint8_t payload[KWS_FRAME_MAX_PAYLOAD];
    const uint32_t kind = rnd_below(10);
    size_t length = rnd_below(8) == 0u ? rnd_below(1025) : rnd_below(40);
    uint8_t type = (uint8_t)(1u + rnd_below(5));
    size_t i, size;
    if (kind == 0u) type = (uint8_t)rnd(); /* maybe unknown */
    for (i = 0; i < length; ++i) payload[i] = (uint8_t)rnd();
    size = kws_frame_encode(type, (uint16_t)rnd(), payload, length, stream + n,
                            sizeof(stream) - n);
    if (kind == 1u && size > 0u) {
      const uint32_t at = rnd_below((uint32_t)size);
      stream[n + at] ^= (uint8_t)(1u << rnd_below(8));
    }
    if (kind == 2u && size > 2u) size -= 1u + rnd_below((uint32_t)size - 2u);
    if (kind == 3u) { /* oversize length */
      stream[n + 5] = 0xFFu;
      stream[n + 6] = 0x7Fu;
    }
    n += size;
    if (kind == 4u) { /* garbage, rich in sync bytes */
      const size_t g = rnd_below(30);
      for (i = 0; i < g; ++i) {
        const uint32_t c = rnd_below(4);
        stream[n++] = c == 0u ? 0xA5u : (c == 1u ? 0x5Au : (uint8_t)rnd());
      }
    }
  }
  kws_frame_decoder_init(&dec);
  while (off < n) {
    const size_t chunk = 1u + rnd_below(300);
    const size_t take = n - off < chunk ? n - off : chunk;
    decode_print(&dec, stream + off, take);
    off += take;
    kws_frame_decoder_idle(&dec, now_ms, 1);
    if (rnd_below(4) == 0u) { /* the host pauses */
      now_ms += rnd_below(250);
      if (kws_frame_decoder_idle(&dec, now_ms, 0)) {
        printf("frame idle at=%lu\n", (unsigned long)off);
        decode_print(&dec, stream, 0); /* no new bytes */
      }
    }
  }
  printf("frames bytes=%lu\n", (unsigned long)n);
}

static void run_lines(void) {
  static const char* const kTags[4] = {"DET", "STATS", "Bad", "HELLO"};
  static const char* const kKeys[5] = {"t_ms", "label", "x", "Key", "scores"};
  char buf[600];
  int step;
  for (step = 0; step < 300; ++step) {
    kws_line line;
    const size_t cap = rnd_below(10) == 0u ? sizeof(buf) : rnd_below(120);
    const int fields = (int)rnd_below(8);
    size_t len;
    int f;
    kws_line_begin(&line, buf, cap, kTags[rnd_below(4)]);
    for (f = 0; f < fields; ++f) {
      const char* key = kKeys[rnd_below(5)];
      const uint32_t kind = rnd_below(5);
      if (kind == 0u) {
        kws_line_add_int(&line, key, (int32_t)rnd());
      } else if (kind == 1u) {
        kws_line_add_uint(&line, key, rnd());
      } else if (kind == 2u) {
        char value[260];
        const size_t vlen = rnd_below(10) == 0u ? rnd_below(260) : rnd_below(12);
        size_t i;
        for (i = 0; i < vlen; ++i) value[i] = (char)(1u + rnd_below(255));
        value[vlen] = '\0';
        kws_line_add_str(&line, key, value);
      } else if (kind == 3u) {
        uint8_t values[70];
        const size_t count = rnd_below(70);
        size_t i;
        for (i = 0; i < count; ++i) values[i] = (uint8_t)rnd();
        kws_line_add_u8_list(&line, key, values, count);
      } else {
        static const char* const kWords[4] = {"yes", "no", "a b", "x,y"};
        const char* list[3];
        list[0] = kWords[rnd_below(4)];
        list[1] = kWords[rnd_below(4)];
        list[2] = kWords[rnd_below(4)];
        kws_line_add_str_list(&line, key, list, 1u + rnd_below(3));
      }
    }
    len = kws_line_end(&line);
    printf("line %d cap=%lu len=%lu trunc=%d: %s", step, (unsigned long)cap,
           (unsigned long)len, kws_line_truncated(&line), len ? buf : "\n");
  }
}

static void run_scaling(void) {
  uint16_t raw[64];
  int8_t out[64];
  int step;
  for (step = 0; step < 100; ++step) {
    /* Mostly realistic (about 2^-2 .. 2^2), sometimes out of range. One rnd()
     * per statement: the order operands are evaluated in is unspecified. */
    const uint32_t magnitude = 1u + rnd_below(8);
    const int32_t multiplier = (int32_t)(rnd() >> magnitude);
    const int32_t shift =
        (int32_t)(rnd_below(10) == 0u ? rnd_below(70) : 22u + rnd_below(12));
    const int32_t zero_point = (int32_t)rnd_below(256) - 128;
    int status, i;
    for (i = 0; i < 64; ++i) {
      raw[i] = (uint16_t)(rnd_below(4) == 0u ? rnd() : rnd_below(1024));
    }
    status = kws_scale_features(raw, out, 64, multiplier, shift, zero_point);
    printf("scale %d m=%ld s=%ld zp=%ld st=%d:", step, (long)multiplier,
           (long)shift, (long)zero_point, status);
    for (i = 0; i < 64 && status == 0; ++i) printf(" %d", (int)out[i]);
    printf("\n");
  }
}

static void run_window(void) {
  int8_t storage[7 * 3], out[7 * 3], slice[3];
  kws_feature_window window;
  int step, i;
  kws_window_init(&window, storage, 7, 3, -128);
  for (step = 0; step < 30; ++step) {
    for (i = 0; i < 3; ++i) slice[i] = (int8_t)rnd();
    if (rnd_below(12) == 0u) kws_window_reset(&window, (int8_t)rnd());
    kws_window_push(&window, slice);
    kws_window_copy(&window, out);
    printf("window %d full=%d:", step, kws_window_full(&window));
    for (i = 0; i < 7 * 3; ++i) printf(" %d", (int)out[i]);
    printf("\n");
  }
}

static void run_txq(void) {
  static uint8_t storage[700];
  static char line[KWS_LINE_MAX];
  kws_txq q;
  uint32_t checksum = 0u, now = 0xFFFFFF00u;
  int step;
  kws_txq_init(&q, storage, sizeof(storage));
  for (step = 0; step < 300; ++step) {
    const size_t n = rnd_below(KWS_LINE_MAX);
    uint8_t packet[KWS_TXQ_USB_PACKET];
    size_t i, size, taken = 0;
    int pushed;
    for (i = 0; i < n; ++i) line[i] = (char)rnd();
    pushed = kws_txq_push(&q, line, n);
    while (rnd_below(3) != 0u &&
           (size = kws_txq_packet(&q, packet, KWS_TXQ_USB_PACKET)) > 0u) {
      const size_t took = rnd_below(5) == 0u ? rnd_below((uint32_t)size) : size;
      for (i = 0; i < took; ++i) checksum = checksum * 31u + packet[i];
      kws_txq_pop(&q, took);
      taken += took;
    }
    now += rnd_below(100);
    printf("txq %d n=%lu pushed=%d taken=%lu pending=%lu dropped=%lu "
           "sum=%08lx elapsed=%lu\n",
           step, (unsigned long)n, pushed, (unsigned long)taken,
           (unsigned long)kws_txq_pending(&q),
           (unsigned long)kws_txq_dropped(&q), (unsigned long)checksum,
           (unsigned long)kws_elapsed_ms(now, now - 50u + rnd_below(100)));
  }
}

/* Clips of every kind (noise at random levels with a random envelope, a
 * full-scale square wave, a click in silence, all-negative), fed in random
 * chunks; the window is printed at random points, before it is full too. */
static void run_mfcc(void) {
  static const kws_mfcc_tables tables = KWS_MFCC_TABLES_INIT;
  static int32_t storage[KWS_MFCC_STORAGE_WORDS(480, 512, 40,
                                                KWS_MFCC_FRAMES)];
  static int32_t out[KWS_MFCC_FRAMES * 10];
  static int16_t clip[16000];
  kws_mfcc m;
  int c, i;
  printf("mfcc init=%d\n", kws_mfcc_init(&m, &tables, KWS_MFCC_FRAMES, storage,
                                         sizeof storage / sizeof storage[0]));
  for (c = 0; c < 8; ++c) {
    const uint32_t kind = (uint32_t)c % 4u;
    const int32_t level = 1 + (int32_t)rnd_below(32767);
    size_t at = 0;
    int prints = 0;
    for (i = 0; i < 16000; ++i) {
      int32_t v;
      if (kind == 0u) { /* noise, louder in the middle */
        const int32_t env = i > 4000 && i < 11000 ? level : level / 16 + 1;
        v = (int32_t)rnd_below((uint32_t)(2 * env + 1)) - env;
      } else if (kind == 1u) {
        v = (i / (7 + c)) % 2 ? 32767 : -32768;
      } else if (kind == 2u) {
        v = i == 9000 + c ? level : 0;
      } else {
        v = -1 - (int32_t)rnd_below((uint32_t)level);
      }
      clip[i] = (int16_t)v;
    }
    kws_mfcc_reset(&m);
    while (at < 16000u) {
      const size_t chunk = 1u + rnd_below(2000);
      const size_t take = 16000u - at < chunk ? 16000u - at : chunk;
      const size_t frames = kws_mfcc_add(&m, clip + at, take);
      at += take;
      if (at == 16000u || rnd_below(6) == 0u) {
        kws_mfcc_window(&m, out);
        printf("mfcc %d at=%lu frames=%lu full=%d:", c, (unsigned long)at,
               (unsigned long)frames, kws_mfcc_full(&m));
        for (i = 0; i < KWS_MFCC_FRAMES * 10; ++i) printf(" %ld", (long)out[i]);
        printf("\n");
        ++prints;
      }
    }
    {
      int8_t q[KWS_MFCC_FRAMES * 10];
      const int32_t multiplier = (int32_t)(rnd() >> 1);
      const int32_t shift = 30 + (int32_t)rnd_below(25);
      const int32_t zero_point = (int32_t)rnd_below(256) - 128;
      const int st = kws_mfcc_quantize(out, q, KWS_MFCC_FRAMES * 10,
                                       multiplier, shift, zero_point);
      printf("mfcc_q %d m=%ld s=%ld zp=%ld st=%d prints=%d:", c,
             (long)multiplier, (long)shift, (long)zero_point, st, prints);
      for (i = 0; i < KWS_MFCC_FRAMES * 10; ++i) printf(" %d", (int)q[i]);
      printf("\n");
    }
  }
}

int main(void) {
  run_ring();
  run_recognizer();
  run_frames();
  run_lines();
  run_scaling();
  run_window();
  run_txq();
  run_mfcc();
  printf("end\n");
  return 0;
}
