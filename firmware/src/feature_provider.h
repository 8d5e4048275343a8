// Audio -> the model's int8 input window, with the front end the training
// features were computed with (model_settings.h: KWS_FE_MLPERF_MFCC selects
// mfcc_feature_provider.cpp, else feature_provider.cpp, the TFLM
// microfrontend).
#ifndef NANO_KWS_FEATURE_PROVIDER_H_
#define NANO_KWS_FEATURE_PROVIDER_H_

#include <stddef.h>
#include <stdint.h>

// Allocates the front end's state (once); false if it cannot.
bool feature_provider_setup();

// Forgets all audio: the front end's state and the feature window start
// over, as at the start of a training clip.
void feature_provider_reset();

// Runs the front end over the samples, keeping its state between calls.
// Returns the number of new slices (one every KWS_FE_STRIDE_MS).
int feature_provider_add(const int16_t* samples, size_t count);

// True once KWS_NUM_SLICES slices were made since the last reset.
bool feature_provider_full();

// Writes the int8 model input, KWS_NUM_SLICES x KWS_SLICE_SIZE, oldest slice
// first (slices not made since the reset are silence).
void feature_provider_fill(int8_t* input);

#endif  // NANO_KWS_FEATURE_PROVIDER_H_
