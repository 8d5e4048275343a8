/* Turns a stream of per-inference class scores into keyword detections.
 *
 * Single inferences are noisy, so - like TFLM micro_speech's RecognizeCommands -
 * the scores of the last average_window_ms are averaged and a keyword is
 * reported once when its average crosses a threshold. The rules, as in the
 * upstream recognize_commands.cc:
 *  1. Results must come in time order. A time stamp earlier than the latest one
 *     is rejected (KWS_REC_ERR_TIME) and leaves the state unchanged. (Upstream
 *     compares with the *oldest* result in the window, which lets slightly
 *     out-of-order results through; comparing with the latest is what its
 *     error message says it checks.) Equal time stamps are accepted.
 *  2. The new result is appended and every result older than
 *     time_ms - average_window_ms is dropped.
 *  3. No average is formed ("not ready") while the window holds fewer than
 *     minimum_count results or spans less than average_window_ms / 4 (the
 *     newest minus the oldest time): early averages are unreliable.
 *  4. Each label's average is the integer mean (truncated) of its scores.
 *  5. The top label is the first one with the highest average; if every
 *     average is 0 it is label 0 with score 0.
 *  6. It is a new command when its average > the top label's threshold and
 *     either it differs from the previous new command's label, or more than
 *     suppression_ms passed since that one (no previous one counts as
 *     infinitely long ago). Upstream also treats a previous command of
 *     label 0 ("silence") as infinitely long ago; that only changes when a
 *     repeated silence re-arms, which is never reported here, so it is left out.
 * Our additions: per-label thresholds (kws_recognizer_set_thresholds; by
 * default every label has config.detection_threshold, which is upstream's
 * single threshold). The top label is still the one with the highest average;
 * only the bar it must clear depends on the label, so a keyword the model
 * scores low can have a lower bar than a confident one. Cost: one byte per
 * label in the struct, KWS_RECOGNIZER_MAX_LABELS = 32 bytes of RAM, and one
 * load per result.
 * And the reportable mask: a new command of a label that is not
 * a keyword (silence, unknown) still becomes the "previous command", exactly as
 * upstream, but it is never reported as a detection. So "yes", then a
 * confident "unknown", then "yes" again within suppression_ms reports "yes"
 * twice, which is what upstream does.
 *
 * Times are uint32 milliseconds (Arduino millis()); differences are taken
 * modulo 2^32, so the wrap after 49 days is harmless.
 * Storage is fixed-size inside the struct, which the caller owns.
 */
#ifndef KWS_RECOGNIZER_H_
#define KWS_RECOGNIZER_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_RECOGNIZER_MAX_LABELS 32
/* 1 s of history at one inference per 20 ms stride is 50 results. When the
 * window holds more than this, the oldest results are dropped early. */
#define KWS_RECOGNIZER_MAX_HISTORY 64

typedef enum {
  KWS_REC_OK = 0,
  KWS_REC_ERR_ARG = -1,  /* bad config, label count or pointer */
  KWS_REC_ERR_TIME = -2  /* time stamp earlier than the latest result */
} kws_rec_status;

typedef struct {
  uint32_t average_window_ms;  /* > 0 */
  uint8_t detection_threshold; /* average must be strictly above this (every
                                  label until kws_recognizer_set_thresholds) */
  uint32_t suppression_ms;
  uint32_t minimum_count;      /* 1 .. KWS_RECOGNIZER_MAX_HISTORY */
} kws_recognizer_config;

typedef struct {
  int ready;          /* rule 3 passed; the fields below are meaningful */
  int top_index;      /* -1 when not ready */
  uint8_t top_score;  /* average of the top label, 0..255 */
  int is_new_command; /* rule 6, for any label */
  int detected;       /* is_new_command and the label is reportable */
} kws_recognition;

typedef struct {
  kws_recognizer_config config;
  int num_labels;
  uint8_t reportable[KWS_RECOGNIZER_MAX_LABELS];
  uint8_t thresholds[KWS_RECOGNIZER_MAX_LABELS]; /* per label, rule 6 */
  uint32_t times[KWS_RECOGNIZER_MAX_HISTORY];
  uint8_t scores[KWS_RECOGNIZER_MAX_HISTORY][KWS_RECOGNIZER_MAX_LABELS];
  int front; /* index of the oldest result */
  int count; /* results in the window */
  int previous_index; /* label of the previous new command, -1 for none */
  uint32_t previous_time_ms;
} kws_recognizer;

/* reportable[i] != 0 marks label i as a keyword. */
kws_rec_status kws_recognizer_init(kws_recognizer* rec,
                                   const kws_recognizer_config* config,
                                   int num_labels, const uint8_t* reportable);

/* Gives each label its own threshold: thresholds holds num_labels values (the
 * average of label i must be strictly above thresholds[i] for a new command).
 * Replaces config.detection_threshold; history and previous command are kept.
 * KWS_REC_ERR_ARG on a NULL pointer (nothing changed). */
kws_rec_status kws_recognizer_set_thresholds(kws_recognizer* rec,
                                             const uint8_t* thresholds);

/* Forgets all results and the previous command (start of a new clip). */
void kws_recognizer_reset(kws_recognizer* rec);

/* scores: num_labels values 0..255 (see kws_scores_from_int8). On an error
 * *out reads "not ready". */
kws_rec_status kws_recognizer_process(kws_recognizer* rec, uint32_t time_ms,
                                      const uint8_t* scores,
                                      kws_recognition* out);

/* Converts the model's int8 softmax output to 0..255 scores: with the usual
 * output scale 1/256 a probability p is stored as q = 256 p + zero_point, so
 * q - zero_point is p in units of 1/256, clamped to a byte. */
void kws_scores_from_int8(const int8_t* output, int n, int32_t zero_point,
                          uint8_t* scores);

#ifdef __cplusplus
}
#endif

#endif /* KWS_RECOGNIZER_H_ */
