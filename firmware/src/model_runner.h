// The TFLM interpreter for the compiled-in model (models/<name>/model_data.cc).
#ifndef NANO_KWS_MODEL_RUNNER_H_
#define NANO_KWS_MODEL_RUNNER_H_

#include <stddef.h>
#include <stdint.h>

namespace tflite {
class MicroProfilerInterface;
}

// Loads the model and allocates its tensors. Returns nullptr when ready, else
// the ERR code - "schema" (the model's flatbuffer schema is not the one this
// TFLM reads), "ops" (the resolver could not register an op the model uses),
// "shape" (input/output type, size or quantization differ from
// model_settings.h) or "arena" (KWS_ARENA_SIZE is too small) - with *detail.
// A profiler, if given, sees every operator of every invoke (the M4 check
// counts instructions per layer with it); the board passes none.
const char* model_runner_setup(const char** detail,
                               tflite::MicroProfilerInterface* profiler = nullptr);

// The model input: KWS_NUM_SLICES x KWS_SLICE_SIZE int8, oldest slice first.
int8_t* model_runner_input();

// Runs the model; false if TFLM reports an error.
bool model_runner_invoke();

// KWS_NUM_LABELS int8 softmax outputs (zero point KWS_OUTPUT_ZERO_POINT).
const int8_t* model_runner_output();

size_t model_runner_arena_used();

// Label names in output order (KWS_LABELS).
const char* const* model_labels();

#endif  // NANO_KWS_MODEL_RUNNER_H_
