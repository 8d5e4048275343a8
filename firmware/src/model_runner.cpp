#include "model_runner.h"

// The library's top header: including it is what makes the Arduino and
// PlatformIO dependency finders build the TFLM sources.
#include <Chirale_TensorFlowLite.h>

#include "model_data.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
// CMSIS-NN kernels want 16-byte aligned buffers.
alignas(16) uint8_t g_arena[KWS_ARENA_SIZE];
const char* const g_labels[KWS_NUM_LABELS] = KWS_LABELS;
tflite::MicroInterpreter* g_interpreter = nullptr;
TfLiteTensor* g_input = nullptr;
TfLiteTensor* g_output = nullptr;

bool is_int8_of_size(const TfLiteTensor* tensor, size_t bytes) {
  return tensor != nullptr && tensor->type == kTfLiteInt8 &&
         tensor->bytes == bytes;
}
}  // namespace

const char* model_runner_setup(const char** detail,
                               tflite::MicroProfilerInterface* profiler) {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION ||
      KWS_TFLITE_SCHEMA_VERSION != TFLITE_SCHEMA_VERSION) {
    *detail = "model_schema_differs_from_tflm";
    return "schema";
  }

  // Only the ops the exporter found in the model: the others' code is not
  // linked, which saves tens of KB of flash over an all-ops resolver.
  static tflite::MicroMutableOpResolver<KWS_OP_COUNT> resolver;
  if (!KWS_REGISTER_OPS(resolver)) {
    *detail = "op_registration_failed";
    return "ops";
  }
  static tflite::MicroInterpreter interpreter(
      model, resolver, g_arena, KWS_ARENA_SIZE, nullptr, profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    *detail = "allocate_tensors_failed";
    return "arena";
  }

  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  if (!is_int8_of_size(input, KWS_NUM_SLICES * KWS_SLICE_SIZE)) {
    *detail = "input_not_int8_of_slices_x_channels";
    return "shape";
  }
  if (!is_int8_of_size(output, KWS_NUM_LABELS)) {
    *detail = "output_not_int8_of_num_labels";
    return "shape";
  }
  // The feature scaling and the score conversion assume this quantization.
  // The header prints each scale as the shortest decimal that round-trips
  // to the same float, so equality is exact.
  if (input->params.zero_point != KWS_INPUT_ZERO_POINT ||
      output->params.zero_point != KWS_OUTPUT_ZERO_POINT) {
    *detail = "zero_points_differ_from_model_settings";
    return "shape";
  }
  if (input->params.scale != KWS_INPUT_SCALE ||
      output->params.scale != KWS_OUTPUT_SCALE) {
    *detail = "scales_differ_from_model_settings";
    return "shape";
  }
  g_interpreter = &interpreter;
  g_input = input;
  g_output = output;
  return nullptr;
}

int8_t* model_runner_input() { return g_input->data.int8; }

bool model_runner_invoke() { return g_interpreter->Invoke() == kTfLiteOk; }

const int8_t* model_runner_output() { return g_output->data.int8; }

size_t model_runner_arena_used() { return g_interpreter->arena_used_bytes(); }

const char* const* model_labels() { return g_labels; }
