/* The serial protocol of docs/protocol.md, version 1.
 *
 * Host -> device: binary frames
 *   0xA5 0x5A | type u8 | seq u16 LE | length u16 LE | payload | crc u16 LE
 * decoded here one byte at a time into a bounded buffer, so a frame is acted on
 * only when it is whole and its CRC matches.
 * Device -> host: text lines "TAG key=value ... *HH\n" built here without
 * printf (the M4 build links newlib-nano) and never past the caller's buffer.
 */
#ifndef KWS_PROTOCOL_H_
#define KWS_PROTOCOL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_PROTOCOL_VERSION 1

/* ---- CRCs ---- */

/* CRC-8: polynomial 0x07, init 0x00, no reflection, no final XOR. */
uint8_t kws_crc8(const uint8_t* data, size_t n);
/* CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF, no reflection/XOR. */
uint16_t kws_crc16_ccitt(const uint8_t* data, size_t n);

/* ---- Host -> device frames ---- */

#define KWS_FRAME_SYNC0 0xA5u
#define KWS_FRAME_SYNC1 0x5Au
#define KWS_FRAME_HEADER_SIZE 7u /* sync, type, seq, length */
#define KWS_FRAME_CRC_SIZE 2u
#define KWS_FRAME_MAX_PAYLOAD 1024u
#define KWS_FRAME_MAX_SIZE \
  (KWS_FRAME_HEADER_SIZE + KWS_FRAME_MAX_PAYLOAD + KWS_FRAME_CRC_SIZE)

typedef enum {
  KWS_FRAME_HELLO = 0x01,      /* u8 protocol version */
  KWS_FRAME_AUDIO = 0x02,      /* int16 LE samples */
  KWS_FRAME_CLIP_BEGIN = 0x03, /* u32 LE clip id */
  KWS_FRAME_CLIP_END = 0x04,   /* u32 LE clip id */
  KWS_FRAME_BYE = 0x05         /* empty */
} kws_frame_type;

typedef enum {
  KWS_FRAME_NEED_MORE = 0, /* all input consumed, no event */
  KWS_FRAME_OK = 1,        /* a whole frame with a good CRC */
  KWS_FRAME_ERR_CRC = 2,
  KWS_FRAME_ERR_LENGTH = 3, /* length > KWS_FRAME_MAX_PAYLOAD */
  KWS_FRAME_ERR_TYPE = 4    /* unknown type */
} kws_frame_status;

typedef struct {
  uint8_t type;
  uint16_t seq;
  uint16_t length;        /* as declared in the header */
  const uint8_t* payload; /* into the decoder; NULL for errors */
} kws_frame;

typedef struct {
  /* Bytes of the current candidate frame are buf[start..len). Keeping the
   * bytes of a rejected frame lets the decoder rescan them from one byte after
   * its start, so a good frame hidden behind garbage is not lost. */
  uint8_t buf[KWS_FRAME_MAX_SIZE];
  size_t start;
  size_t len;
  size_t consume; /* bytes to drop at the next call (the last event's) */
  uint32_t last_rx_ms; /* when bytes last arrived (kws_frame_decoder_idle) */
} kws_frame_decoder;

/* Also the reset: forgets any partial frame (the host went away). */
void kws_frame_decoder_init(kws_frame_decoder* dec);

/* Feeds up to n bytes and stops at the first event. *used tells how many of
 * the n bytes were taken; call again with the rest (also with n == 0: one
 * input byte can complete several events after a rescan) until it returns
 * KWS_FRAME_NEED_MORE:
 *
 *   do {
 *     st = kws_frame_decode(&dec, data + off, n - off, &used, &frame);
 *     off += used;
 *     handle(st, &frame);
 *   } while (st != KWS_FRAME_NEED_MORE);
 *
 * For errors, frame->type/seq/length are those of the rejected header. The
 * payload pointer stays valid until the next call. */
kws_frame_status kws_frame_decode(kws_frame_decoder* dec, const uint8_t* data,
                                  size_t n, size_t* used, kws_frame* frame);

/* A host writes a frame in one go, so its bytes arrive within a few ms of
 * each other. A partial frame that waited longer than this with the port idle
 * was cut off (the host aborted mid-frame); waiting for its declared length
 * would swallow the frames of the next connection. */
#define KWS_FRAME_IDLE_MS 100u

/* Call once per poll of the port, after the poll's bytes went through
 * kws_frame_decode (up to KWS_FRAME_NEED_MORE). fed: nonzero when the poll
 * read bytes, or read none because the device held the host back (flow
 * control); zero when the port had nothing to read. When a partial frame has
 * waited more than KWS_FRAME_IDLE_MS since bytes last arrived, it is rejected
 * like a frame with a bad CRC and 1 is returned: then call kws_frame_decode
 * with n == 0 until KWS_FRAME_NEED_MORE, because the bytes behind its sync
 * byte are rescanned and may hold whole frames (a HELLO sent right after the
 * abort). Elapsed time is wrap-safe (kws_elapsed_ms). */
int kws_frame_decoder_idle(kws_frame_decoder* dec, uint32_t now_ms, int fed);

/* Checks the payload size a frame type needs (HELLO 1, AUDIO even, CLIP_* 4,
 * BYE 0). The decoder does not: a frame with a good CRC is a real frame and
 * its bytes must not be rescanned. Returns KWS_FRAME_OK or
 * KWS_FRAME_ERR_LENGTH (the device answers ERR code=length). */
kws_frame_status kws_frame_check_payload(const kws_frame* frame);

/* Little-endian payload readers (the payload may be unaligned). */
uint32_t kws_frame_u32(const kws_frame* frame, size_t offset);
/* Copies up to max_n int16 samples out of an AUDIO payload; returns count. */
size_t kws_frame_samples(const kws_frame* frame, int16_t* out, size_t max_n);

/* Writes a whole frame into out; returns its size, or 0 if the payload is
 * longer than KWS_FRAME_MAX_PAYLOAD or out is too small. The type is not
 * checked, so tests can make frames the decoder rejects. */
size_t kws_frame_encode(uint8_t type, uint16_t seq, const uint8_t* payload,
                        size_t length, uint8_t* out, size_t cap);

/* ---- Device -> host lines ---- */

#define KWS_LINE_MAX 512u       /* longest line, including its '\n' */
#define KWS_LINE_MAX_VALUE 200u /* longest value */

/* A line under construction. Each field is added whole or not at all: a field
 * that does not fit (the buffer, KWS_LINE_MAX or KWS_LINE_MAX_VALUE) or has a
 * malformed key is left out and marks the line truncated, so what is sent
 * always parses. Value bytes that the protocol forbids (space, '*', '=',
 * non-printable) are replaced by '_'. */
typedef struct {
  char* buf;
  size_t limit; /* bytes usable for "TAG k=v ..." (room for " *HH\n\0" kept) */
  size_t len;
  int ok;        /* the tag was valid and fitted */
  int truncated; /* some field was left out */
} kws_line;

/* tag: upper-case letters. cap: size of buf. */
void kws_line_begin(kws_line* line, char* buf, size_t cap, const char* tag);
void kws_line_add_int(kws_line* line, const char* key, int32_t value);
void kws_line_add_uint(kws_line* line, const char* key, uint32_t value);
void kws_line_add_str(kws_line* line, const char* key, const char* value);
void kws_line_add_u8_list(kws_line* line, const char* key,
                          const uint8_t* values, size_t n);
/* Elements also have ',' replaced, so the list splits back the same. */
void kws_line_add_str_list(kws_line* line, const char* key,
                           const char* const* values, size_t n);
/* Appends " *HH\n" and a NUL. Returns the length without the NUL, or 0 when
 * the line could not be begun (bad tag or too small a buffer; buf then holds
 * an empty string) or was already ended. */
size_t kws_line_end(kws_line* line);
int kws_line_truncated(const kws_line* line);

#ifdef __cplusplus
}
#endif

#endif /* KWS_PROTOCOL_H_ */
