// What the stream mode of the check image reads back from the board's own
// pipeline (firmware/src/pipeline.cpp): the detections it reported.
#ifndef NANO_KWS_M4_PIPELINE_STUBS_H_
#define NANO_KWS_M4_PIPELINE_STUBS_H_

#include <stdint.h>

struct Detection {
  uint32_t t_ms;     // audio time, as DET's t_ms
  int32_t label;     // output index
  uint32_t score;    // averaged posterior 0-255
};

// Detections since the last call, oldest first; at most kMaxDetections are
// kept (the count goes on).
const Detection* detections_taken(uint32_t* count);
constexpr uint32_t kMaxDetections = 1024;

#endif  // NANO_KWS_M4_PIPELINE_STUBS_H_
