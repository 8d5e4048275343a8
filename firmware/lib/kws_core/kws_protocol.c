#include "kws_protocol.h"

#include <string.h>

#include "kws_clock.h"

/* ---- CRCs ---- */

uint8_t kws_crc8(const uint8_t* data, size_t n) {
  uint8_t crc = 0u;
  size_t i;
  int bit;
  for (i = 0; i < n; ++i) {
    crc ^= data[i];
    for (bit = 0; bit < 8; ++bit) {
      crc = (uint8_t)((crc & 0x80u) ? ((unsigned)crc << 1) ^ 0x07u
                                      : (unsigned)crc << 1);
    }
  }
  return crc;
}

uint16_t kws_crc16_ccitt(const uint8_t* data, size_t n) {
  /* One nibble at a time: audio frames arrive at 32 KB/s, a bitwise loop
   * would cost ~2% of the M4, a 256-entry table 512 bytes of flash. */
  static const uint16_t kNibble[16] = {
      0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
      0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu};
  uint16_t crc = 0xFFFFu;
  size_t i;
  for (i = 0; i < n; ++i) {
    crc = (uint16_t)((crc << 4) ^ kNibble[(crc >> 12) ^ (data[i] >> 4)]);
    crc = (uint16_t)((crc << 4) ^ kNibble[(crc >> 12) ^ (data[i] & 0x0Fu)]);
  }
  return crc;
}

/* ---- Host -> device frames ---- */

static uint16_t get_u16le(const uint8_t* p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static int known_type(uint8_t type) {
  return type >= KWS_FRAME_HELLO && type <= KWS_FRAME_BYE;
}

void kws_frame_decoder_init(kws_frame_decoder* dec) {
  dec->start = 0u;
  dec->len = 0u;
  dec->consume = 0u;
  dec->last_rx_ms = 0u;
}

/* Looks for the next event in the buffered bytes. */
static kws_frame_status scan(kws_frame_decoder* dec, kws_frame* frame) {
  for (;;) {
    const uint8_t* p = dec->buf + dec->start;
    const size_t have = dec->len - dec->start;
    size_t total;

    if (have == 0u) return KWS_FRAME_NEED_MORE;
    if (p[0] != KWS_FRAME_SYNC0) {
      const uint8_t* next = (const uint8_t*)memchr(p, KWS_FRAME_SYNC0, have);
      dec->start = next != NULL ? (size_t)(next - dec->buf) : dec->len;
      continue;
    }
    if (have < 2u) return KWS_FRAME_NEED_MORE;
    if (p[1] != KWS_FRAME_SYNC1) {
      dec->start += 1u;
      continue;
    }
    if (have < KWS_FRAME_HEADER_SIZE) return KWS_FRAME_NEED_MORE;

    frame->type = p[2];
    frame->seq = get_u16le(p + 3);
    frame->length = get_u16le(p + 5);
    frame->payload = NULL;
    /* A rejected frame is rescanned from the byte after its 0xA5. */
    if (!known_type(frame->type)) {
      dec->consume = 1u;
      return KWS_FRAME_ERR_TYPE;
    }
    if (frame->length > KWS_FRAME_MAX_PAYLOAD) {
      dec->consume = 1u;
      return KWS_FRAME_ERR_LENGTH;
    }

    total = KWS_FRAME_HEADER_SIZE + frame->length + KWS_FRAME_CRC_SIZE;
    if (have < total) return KWS_FRAME_NEED_MORE;
    if (kws_crc16_ccitt(p + 2, total - 4u) != get_u16le(p + total - 2u)) {
      dec->consume = 1u;
      return KWS_FRAME_ERR_CRC;
    }
    frame->payload = p + KWS_FRAME_HEADER_SIZE;
    dec->consume = total;
    return KWS_FRAME_OK;
  }
}

kws_frame_status kws_frame_decode(kws_frame_decoder* dec, const uint8_t* data,
                                  size_t n, size_t* used, kws_frame* frame) {
  size_t i = 0;
  /* Drop the bytes of the event returned last time only now, so its payload
   * pointer stayed valid in between. */
  dec->start += dec->consume;
  dec->consume = 0u;
  for (;;) {
    const kws_frame_status status = scan(dec, frame);
    if (status != KWS_FRAME_NEED_MORE || i == n) {
      *used = i;
      return status;
    }
    if (dec->start == dec->len) {
      dec->start = 0u;
      dec->len = 0u;
    } else if (dec->len == sizeof(dec->buf)) {
      /* A candidate is never longer than the buffer, so moving it to the
       * front always makes room. */
      memmove(dec->buf, dec->buf + dec->start, dec->len - dec->start);
      dec->len -= dec->start;
      dec->start = 0u;
    }
    dec->buf[dec->len++] = data[i++];
  }
}

int kws_frame_decoder_idle(kws_frame_decoder* dec, uint32_t now_ms, int fed) {
  /* Bytes of a candidate not yet returned as an event. */
  const size_t pending = dec->len - dec->start - dec->consume;
  if (fed || pending == 0u) {
    dec->last_rx_ms = now_ms;
    return 0;
  }
  if (kws_elapsed_ms(now_ms, dec->last_rx_ms) <= KWS_FRAME_IDLE_MS) return 0;
  /* As for a rejected frame: rescan from the byte after its start. */
  dec->start += dec->consume;
  dec->consume = 1u;
  dec->last_rx_ms = now_ms;
  return 1;
}

kws_frame_status kws_frame_check_payload(const kws_frame* frame) {
  int ok;
  switch (frame->type) {
    case KWS_FRAME_HELLO: ok = frame->length == 1u; break;
    case KWS_FRAME_AUDIO: ok = (frame->length % 2u) == 0u; break;
    case KWS_FRAME_CLIP_BEGIN:
    case KWS_FRAME_CLIP_END: ok = frame->length == 4u; break;
    case KWS_FRAME_BYE: ok = frame->length == 0u; break;
    default: ok = 0; break;
  }
  return ok ? KWS_FRAME_OK : KWS_FRAME_ERR_LENGTH;
}

uint32_t kws_frame_u32(const kws_frame* frame, size_t offset) {
  const uint8_t* p = frame->payload + offset;
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

size_t kws_frame_samples(const kws_frame* frame, int16_t* out, size_t max_n) {
  size_t count = frame->length / 2u;
  size_t i;
  if (count > max_n) count = max_n;
  for (i = 0; i < count; ++i) {
    out[i] = (int16_t)get_u16le(frame->payload + 2u * i);
  }
  return count;
}

size_t kws_frame_encode(uint8_t type, uint16_t seq, const uint8_t* payload,
                        size_t length, uint8_t* out, size_t cap) {
  const size_t total = KWS_FRAME_HEADER_SIZE + length + KWS_FRAME_CRC_SIZE;
  uint16_t crc;
  if (length > KWS_FRAME_MAX_PAYLOAD || cap < total) return 0u;
  out[0] = KWS_FRAME_SYNC0;
  out[1] = KWS_FRAME_SYNC1;
  out[2] = type;
  out[3] = (uint8_t)(seq & 0xFFu);
  out[4] = (uint8_t)(seq >> 8);
  out[5] = (uint8_t)(length & 0xFFu);
  out[6] = (uint8_t)(length >> 8);
  if (length > 0u) memcpy(out + KWS_FRAME_HEADER_SIZE, payload, length);
  crc = kws_crc16_ccitt(out + 2, total - 4u);
  out[total - 2u] = (uint8_t)(crc & 0xFFu);
  out[total - 1u] = (uint8_t)(crc >> 8);
  return total;
}

/* ---- Device -> host lines ---- */

#define KWS_LINE_TRAILER 6u /* " *HH\n" and the NUL */

static int put(kws_line* line, char c) {
  if (line->len >= line->limit) return 0;
  line->buf[line->len++] = c;
  return 1;
}

static int put_uint(kws_line* line, uint32_t value) {
  char digits[10];
  int n = 0;
  do {
    digits[n++] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value != 0u);
  while (n > 0) {
    if (!put(line, digits[--n])) return 0;
  }
  return 1;
}

/* Bytes a value may hold as-is; others become '_'. */
static char value_char(char c, int allow_comma) {
  const int printable = c > ' ' && c <= '~';
  if (!printable || c == '*' || c == '=' || (c == ',' && !allow_comma)) {
    return '_';
  }
  return c;
}

/* Writes " key=" and returns the position the field started at, or
 * (size_t)-1 if it did not fit or the key is malformed. */
static size_t field_begin(kws_line* line, const char* key) {
  const size_t mark = line->len;
  const char* k = key;
  if (!line->ok) return (size_t)-1;
  if (!put(line, ' ') || *k == '\0') goto fail;
  for (; *k != '\0'; ++k) {
    const int valid =
        (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_';
    if (!valid || !put(line, *k)) goto fail;
  }
  if (!put(line, '=')) goto fail;
  return mark;
fail:
  line->len = mark;
  line->truncated = 1;
  return (size_t)-1;
}

/* Keeps the field if it was written whole and its value is short enough. */
static void field_end(kws_line* line, size_t mark, int written) {
  size_t value_start = mark;
  while (line->buf[value_start] != '=') ++value_start;
  if (!written || line->len - (value_start + 1u) > KWS_LINE_MAX_VALUE) {
    line->len = mark;
    line->truncated = 1;
  }
}

static int put_text(kws_line* line, const char* text, int allow_comma) {
  for (; *text != '\0'; ++text) {
    if (!put(line, value_char(*text, allow_comma))) return 0;
  }
  return 1;
}

void kws_line_begin(kws_line* line, char* buf, size_t cap, const char* tag) {
  const size_t usable = cap < KWS_LINE_MAX + 1u ? cap : KWS_LINE_MAX + 1u;
  const char* t = tag;
  line->buf = buf;
  line->limit = usable > KWS_LINE_TRAILER ? usable - KWS_LINE_TRAILER : 0u;
  line->len = 0u;
  line->ok = 0;
  line->truncated = 0;
  if (cap > 0u) buf[0] = '\0'; /* what a failed line leaves behind */
  if (*t == '\0') return;
  for (; *t != '\0'; ++t) {
    if (*t < 'A' || *t > 'Z' || !put(line, *t)) {
      line->len = 0u;
      if (cap > 0u) buf[0] = '\0';
      return;
    }
  }
  line->ok = 1;
}

void kws_line_add_int(kws_line* line, const char* key, int32_t value) {
  const size_t mark = field_begin(line, key);
  int written;
  if (mark == (size_t)-1) return;
  if (value < 0) {
    /* 0u - value is the magnitude, also for INT32_MIN. */
    written = put(line, '-') && put_uint(line, 0u - (uint32_t)value);
  } else {
    written = put_uint(line, (uint32_t)value);
  }
  field_end(line, mark, written);
}

void kws_line_add_uint(kws_line* line, const char* key, uint32_t value) {
  const size_t mark = field_begin(line, key);
  if (mark == (size_t)-1) return;
  field_end(line, mark, put_uint(line, value));
}

void kws_line_add_str(kws_line* line, const char* key, const char* value) {
  const size_t mark = field_begin(line, key);
  if (mark == (size_t)-1) return;
  field_end(line, mark, put_text(line, value, 1));
}

void kws_line_add_u8_list(kws_line* line, const char* key,
                          const uint8_t* values, size_t n) {
  const size_t mark = field_begin(line, key);
  int written = 1;
  size_t i;
  if (mark == (size_t)-1) return;
  for (i = 0; i < n && written; ++i) {
    written = (i == 0u || put(line, ',')) && put_uint(line, values[i]);
  }
  field_end(line, mark, written);
}

void kws_line_add_str_list(kws_line* line, const char* key,
                           const char* const* values, size_t n) {
  const size_t mark = field_begin(line, key);
  int written = 1;
  size_t i;
  if (mark == (size_t)-1) return;
  for (i = 0; i < n && written; ++i) {
    written = (i == 0u || put(line, ',')) && put_text(line, values[i], 0);
  }
  field_end(line, mark, written);
}

size_t kws_line_end(kws_line* line) {
  static const char kHex[] = "0123456789ABCDEF";
  uint8_t crc;
  char* p;
  if (!line->ok) return 0u;
  /* begin() kept KWS_LINE_TRAILER bytes beyond limit for this. */
  crc = kws_crc8((const uint8_t*)line->buf, line->len);
  p = line->buf + line->len;
  p[0] = ' ';
  p[1] = '*';
  p[2] = kHex[crc >> 4];
  p[3] = kHex[crc & 0x0Fu];
  p[4] = '\n';
  p[5] = '\0';
  line->len += 5u;
  line->ok = 0; /* ended: further adds and ends are ignored */
  return line->len;
}

int kws_line_truncated(const kws_line* line) { return line->truncated; }
