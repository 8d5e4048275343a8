#include "kws_recognizer.h"

#include <stddef.h>
#include <string.h>

kws_rec_status kws_recognizer_init(kws_recognizer* rec,
                                   const kws_recognizer_config* config,
                                   int num_labels, const uint8_t* reportable) {
  int i;
  if (rec == NULL || config == NULL || reportable == NULL || num_labels < 1 ||
      num_labels > KWS_RECOGNIZER_MAX_LABELS || config->average_window_ms == 0u ||
      config->average_window_ms > 0x7FFFFFFFu ||
      config->suppression_ms > 0x7FFFFFFFu || config->minimum_count < 1u ||
      config->minimum_count > KWS_RECOGNIZER_MAX_HISTORY) {
    return KWS_REC_ERR_ARG;
  }
  memset(rec, 0, sizeof(*rec));
  rec->config = *config;
  rec->num_labels = num_labels;
  for (i = 0; i < num_labels; ++i) {
    rec->reportable[i] = reportable[i] != 0u;
    rec->thresholds[i] = config->detection_threshold;
  }
  kws_recognizer_reset(rec);
  return KWS_REC_OK;
}

kws_rec_status kws_recognizer_set_thresholds(kws_recognizer* rec,
                                             const uint8_t* thresholds) {
  if (rec == NULL || thresholds == NULL) return KWS_REC_ERR_ARG;
  memcpy(rec->thresholds, thresholds, (size_t)rec->num_labels);
  return KWS_REC_OK;
}

void kws_recognizer_reset(kws_recognizer* rec) {
  rec->front = 0;
  rec->count = 0;
  rec->previous_index = -1;
  rec->previous_time_ms = 0u;
}

/* Slot of the offset-th oldest result. */
static int slot(const kws_recognizer* rec, int offset) {
  return (rec->front + offset) % KWS_RECOGNIZER_MAX_HISTORY;
}

/* Milliseconds from earlier to later, modulo 2^32 (see the header). */
static int32_t elapsed(uint32_t later, uint32_t earlier) {
  return (int32_t)(later - earlier);
}

static void drop_oldest(kws_recognizer* rec) {
  rec->front = slot(rec, 1);
  rec->count -= 1;
}

kws_rec_status kws_recognizer_process(kws_recognizer* rec, uint32_t time_ms,
                                      const uint8_t* scores,
                                      kws_recognition* out) {
  const int n = rec->num_labels;
  int32_t sums[KWS_RECOGNIZER_MAX_LABELS];
  int i, k, top = 0;
  int32_t top_score = 0;
  int new_slot;

  if (scores == NULL || out == NULL) return KWS_REC_ERR_ARG;
  out->ready = 0;
  out->top_index = -1;
  out->top_score = 0u;
  out->is_new_command = 0;
  out->detected = 0;
  if (rec->count > 0 &&
      elapsed(time_ms, rec->times[slot(rec, rec->count - 1)]) < 0) {
    return KWS_REC_ERR_TIME;
  }

  /* Rule 2; the window bound is inclusive, as upstream. */
  while (rec->count > 0 &&
         elapsed(time_ms, rec->times[rec->front]) >
             (int32_t)rec->config.average_window_ms) {
    drop_oldest(rec);
  }
  if (rec->count == KWS_RECOGNIZER_MAX_HISTORY) drop_oldest(rec);
  new_slot = slot(rec, rec->count);
  rec->times[new_slot] = time_ms;
  memcpy(rec->scores[new_slot], scores, (size_t)n);
  rec->count += 1;

  /* Rule 3. */
  if ((uint32_t)rec->count < rec->config.minimum_count ||
      elapsed(time_ms, rec->times[rec->front]) <
          (int32_t)(rec->config.average_window_ms / 4u)) {
    return KWS_REC_OK;
  }

  /* Rules 4 and 5. */
  for (i = 0; i < n; ++i) sums[i] = 0;
  for (k = 0; k < rec->count; ++k) {
    const uint8_t* row = rec->scores[slot(rec, k)];
    for (i = 0; i < n; ++i) sums[i] += row[i];
  }
  for (i = 0; i < n; ++i) {
    const int32_t average = sums[i] / rec->count;
    if (average > top_score) {
      top_score = average;
      top = i;
    }
  }

  /* Rule 6. */
  out->ready = 1;
  out->top_index = top;
  out->top_score = (uint8_t)top_score;
  if (top_score > (int32_t)rec->thresholds[top] &&
      (top != rec->previous_index || rec->previous_index < 0 ||
       elapsed(time_ms, rec->previous_time_ms) >
           (int32_t)rec->config.suppression_ms)) {
    rec->previous_index = top;
    rec->previous_time_ms = time_ms;
    out->is_new_command = 1;
    out->detected = rec->reportable[top];
  }
  return KWS_REC_OK;
}

void kws_scores_from_int8(const int8_t* output, int n, int32_t zero_point,
                          uint8_t* scores) {
  int i;
  for (i = 0; i < n; ++i) {
    const int32_t v = (int32_t)output[i] - zero_point;
    scores[i] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}
