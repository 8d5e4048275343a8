// The firmware's own feature provider and model runner, built with the pinned
// TFLM Arduino library for a Cortex-M4 and run under QEMU (mps2-an386): what
// the board computes for each clip, and what it costs in instructions.
//
// `kws m4` writes the clips to clips.bin and reads results.bin back, both in
// QEMU's working directory through semihosting (formats in host/kws/m4.py).
// Per clip, as host-stream mode does it (CLIP_BEGIN, AUDIO..., CLIP_END): the
// front end is reset, the audio goes through it one 20 ms stride at a time,
// then the window is copied into the model input and the model runs once.
//
// Stream mode (stream.bin instead of clips.bin): one long recording through
// the firmware's own pipeline (firmware/src/pipeline.cpp) as the board's loop
// runs it: one stride into the ring, pipeline_run, the next stride. The front
// end is never reset, the model runs every KWS_INFERENCE_EVERY_STRIDES strides
// on a window that has wrapped around, and the recognizer reports detections
// (pipeline_stubs.cpp keeps them). stream_results.bin holds, per stride, its
// instructions, the inference's and the int8 outputs, then the detections.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature_provider.h"
#include "instruction_counter.h"
#include "kws_core.h"
#include "model_runner.h"
#include "model_settings.h"
#include "pipeline.h"
#include "pipeline_stubs.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"

namespace {

constexpr char kClipsMagic[8] = {'K', 'W', 'S', 'M', '4', 'C', '1', '\0'};
constexpr char kResultsMagic[8] = {'K', 'W', 'S', 'M', '4', 'R', '1', '\0'};
constexpr char kStreamMagic[8] = {'K', 'W', 'S', 'M', '4', 'S', '1', '\0'};
constexpr char kStreamResultsMagic[8] = {'K', 'W', 'S', 'M', '4', 'T', '1', '\0'};
// The ring between audio and pipeline_run: a power of two above one stride.
constexpr uint32_t kRingSamples = 1024;
static_assert(kRingSamples >= KWS_FE_STRIDE_SAMPLES, "a stride fits the ring");
constexpr int kMaxLayers = 64;
constexpr size_t kWindowBytes = KWS_NUM_SLICES * KWS_SLICE_SIZE;
// Stack painted below main's frame to find the deepest use (the board's main
// thread has 32 KB).
constexpr size_t kPaintedStackBytes = 48 * 1024;
constexpr uint32_t kPaint = 0xC0FFEE11u;

// Instructions per operator of one Invoke(): TFLM's interpreter wraps each
// operator's invoke in BeginEvent/EndEvent with the op's name as the tag.
class LayerCounter : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    const uint32_t handle = count_++;
    if (handle < kMaxLayers) {
      tags_[handle] = tag;
      start_[handle] = instruction_counter_now();
    }
    return handle;
  }
  void EndEvent(uint32_t handle) override {
    if (handle < kMaxLayers) {
      instructions_[handle] = instruction_counter_since(start_[handle]);
    }
  }
  void Clear() { count_ = 0; }
  uint32_t count() const { return count_ < kMaxLayers ? count_ : kMaxLayers; }
  uint32_t total() const {
    uint32_t sum = 0;
    for (uint32_t i = 0; i < count(); ++i) sum += instructions_[i];
    return sum;
  }
  const char* tag(uint32_t i) const { return tags_[i]; }
  const uint32_t* instructions() const { return instructions_; }

 private:
  uint32_t count_ = 0;
  const char* tags_[kMaxLayers] = {};
  uint32_t start_[kMaxLayers] = {};
  uint32_t instructions_[kMaxLayers] = {};
};

LayerCounter g_layers;

// What one clip cost; written after its window and outputs.
struct ClipCounts {
  uint32_t frontend_instructions;   // every stride of the clip, scaling included
  uint32_t frontend_strides;        // feature_provider_add calls (320 samples)
  uint32_t frontend_slices;         // slices they produced
  uint32_t frontend_max_stride;     // the dearest single stride
  uint32_t inference_instructions;  // window copy + Invoke(), as pipeline.cpp
  // The strides that made a slice: every stride of a continuous stream does,
  // while a reset clip's first one only fills the front end's window (~0.4 k).
  uint32_t frontend_slice_instructions;
};

int fail(const char* what, const char* detail) {
  fprintf(stderr, "model_check: %s: %s\n", what, detail);
  return 2;
}

bool read_exact(FILE* file, void* data, size_t bytes) {
  return fread(data, 1, bytes, file) == bytes;
}

bool write_exact(FILE* file, const void* data, size_t bytes) {
  return fwrite(data, 1, bytes, file) == bytes;
}

uint32_t* stack_pointer() {
  uint32_t* sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

// Fills the stack below the caller's frame with a pattern; the deepest word
// no longer holding it marks the high-water mark.
__attribute__((noinline)) void paint_stack(uint32_t* top) {
  uint32_t* here = stack_pointer();
  for (uint32_t* p = top - kPaintedStackBytes / 4; p < here - 16; ++p) {
    *p = kPaint;
  }
}

size_t stack_used(uint32_t* top) {
  uint32_t* p = top - kPaintedStackBytes / 4;
  while (p < top && *p == kPaint) ++p;
  return static_cast<size_t>(top - p) * 4;
}

size_t heap_in_use() { return mallinfo().uordblks; }

ClipCounts run_clip(const int16_t* samples, uint32_t count, int8_t* window,
                    int8_t* output) {
  ClipCounts counts = {};
  feature_provider_reset();
  for (uint32_t offset = 0; offset < count; offset += KWS_FE_STRIDE_SAMPLES) {
    const uint32_t take = count - offset < KWS_FE_STRIDE_SAMPLES
                              ? count - offset
                              : KWS_FE_STRIDE_SAMPLES;
    const uint32_t start = instruction_counter_now();
    const int slices = feature_provider_add(samples + offset, take);
    const uint32_t spent = instruction_counter_since(start);
    counts.frontend_slices += slices;
    counts.frontend_instructions += spent;
    if (slices > 0) counts.frontend_slice_instructions += spent;
    if (spent > counts.frontend_max_stride) counts.frontend_max_stride = spent;
    ++counts.frontend_strides;
  }
  g_layers.Clear();
  uint32_t start = instruction_counter_now();
  feature_provider_fill(model_runner_input());
  counts.inference_instructions = instruction_counter_since(start);
  // Kept before Invoke(): TFLM's memory planner reuses the input tensor's
  // arena bytes for later layers' activations.
  memcpy(window, model_runner_input(), kWindowBytes);
  start = instruction_counter_now();
  const bool ok = model_runner_invoke();
  counts.inference_instructions += instruction_counter_since(start);
  if (!ok) counts.inference_instructions = 0;
  memcpy(output, model_runner_output(), KWS_NUM_LABELS);
  return counts;
}

// Front end, model runner and (for the stream) the pipeline, as the board's
// setup() makes them; the front end's heap is measured around its setup.
int setup(size_t* frontend_heap) {
  const size_t heap_before = heap_in_use();
  if (!feature_provider_setup()) return fail("feature_provider", "setup");
  *frontend_heap = heap_in_use() - heap_before;
  const char* detail = "";
  const char* error = model_runner_setup(&detail, &g_layers);
  if (error != nullptr) return fail(error, detail);
  pipeline_setup();
  return 0;
}

// Facts the host cannot see from the records: printed once, parsed by kws m4.
void print_facts(size_t frontend_heap, uint32_t* stack_top) {
  printf("layers");
  for (uint32_t i = 0; i < g_layers.count(); ++i) printf(" %s", g_layers.tag(i));
  printf("\narena_used_bytes %u\n",
         static_cast<unsigned>(model_runner_arena_used()));
  printf("frontend_heap_bytes %u\n", static_cast<unsigned>(frontend_heap));
  printf("stack_bytes %u\n", static_cast<unsigned>(stack_used(stack_top)));
}

int run_stream(FILE* in, uint32_t* stack_top) {
  char magic[8];
  uint32_t samples = 0;
  if (!read_exact(in, magic, sizeof magic) ||
      memcmp(magic, kStreamMagic, sizeof magic) != 0 ||
      !read_exact(in, &samples, sizeof samples)) {
    return fail("stream.bin", "not a KWSM4S1 stream file");
  }
  size_t frontend_heap = 0;
  if (const int failed = setup(&frontend_heap)) return failed;
  FILE* out = fopen("stream_results.bin", "wb");
  if (out == nullptr) return fail("stream_results.bin", "cannot create");
  const uint32_t strides = samples / KWS_FE_STRIDE_SAMPLES;
  const uint32_t shape[2] = {strides, KWS_NUM_LABELS};
  if (!write_exact(out, kStreamResultsMagic, sizeof kStreamResultsMagic) ||
      !write_exact(out, shape, sizeof shape)) {
    return fail("stream_results.bin", "write failed");
  }
  static int16_t ring_storage[kRingSamples];
  kws_ring ring;
  kws_ring_init(&ring, ring_storage, kRingSamples);
  pipeline_reset();
  int16_t stride[KWS_FE_STRIDE_SAMPLES];
  for (uint32_t i = 0; i < strides; ++i) {
    if (!read_exact(in, stride, sizeof stride)) {
      return fail("stream.bin", "truncated");
    }
    kws_ring_write(&ring, stride, KWS_FE_STRIDE_SAMPLES);
    g_layers.Clear();
    const uint32_t start = instruction_counter_now();
    pipeline_run(&ring, true);
    const uint32_t record[2] = {instruction_counter_since(start),
                                g_layers.count() > 0 ? g_layers.total() : 0};
    int8_t output[KWS_NUM_LABELS] = {};
    if (record[1] != 0) memcpy(output, model_runner_output(), sizeof output);
    if (!write_exact(out, record, sizeof record) ||
        !write_exact(out, output, sizeof output)) {
      return fail("stream_results.bin", "write failed");
    }
  }
  uint32_t detections = 0;
  const Detection* detected = detections_taken(&detections);
  if (detections > kMaxDetections) return fail("detections", "too many");
  if (!write_exact(out, &detections, sizeof detections) ||
      !write_exact(out, detected, detections * sizeof(Detection))) {
    return fail("stream_results.bin", "write failed");
  }
  fclose(out);
  fclose(in);
  print_facts(frontend_heap, stack_top);
  return 0;
}

}  // namespace

int main(void) {
  uint32_t* stack_top = stack_pointer();
  paint_stack(stack_top);
  instruction_counter_start();

  FILE* stream = fopen("stream.bin", "rb");
  if (stream != nullptr) return run_stream(stream, stack_top);
  FILE* in = fopen("clips.bin", "rb");
  if (in == nullptr) return fail("clips.bin", "cannot open");
  char magic[8];
  uint32_t header[2];  // clips, samples per clip
  if (!read_exact(in, magic, sizeof magic) ||
      memcmp(magic, kClipsMagic, sizeof magic) != 0 ||
      !read_exact(in, header, sizeof header)) {
    return fail("clips.bin", "not a KWSM4C1 clip file");
  }
  const uint32_t clips = header[0], clip_samples = header[1];
  int16_t* samples =
      static_cast<int16_t*>(malloc(clip_samples * sizeof(int16_t)));
  if (samples == nullptr) return fail("clips.bin", "clip too long");

  size_t frontend_heap = 0;
  if (const int failed = setup(&frontend_heap)) return failed;

  FILE* out = fopen("results.bin", "wb");
  if (out == nullptr) return fail("results.bin", "cannot create");
  int8_t window[kWindowBytes];
  int8_t output[KWS_NUM_LABELS];
  const uint32_t shape[3] = {static_cast<uint32_t>(kWindowBytes),
                             KWS_NUM_LABELS, clips};
  if (!write_exact(out, kResultsMagic, sizeof kResultsMagic) ||
      !write_exact(out, shape, sizeof shape)) {
    return fail("results.bin", "write failed");
  }
  for (uint32_t clip = 0; clip < clips; ++clip) {
    if (!read_exact(in, samples, clip_samples * sizeof(int16_t))) {
      return fail("clips.bin", "truncated");
    }
    const ClipCounts counts = run_clip(samples, clip_samples, window, output);
    if (counts.inference_instructions == 0) return fail("invoke", "failed");
    const uint32_t layers = g_layers.count();
    if (!write_exact(out, window, sizeof window) ||
        !write_exact(out, output, sizeof output) ||
        !write_exact(out, &counts, sizeof counts) ||
        !write_exact(out, &layers, sizeof layers) ||
        !write_exact(out, g_layers.instructions(), layers * 4u)) {
      return fail("results.bin", "write failed");
    }
  }
  fclose(out);
  fclose(in);
  print_facts(frontend_heap, stack_top);
  return 0;
}
