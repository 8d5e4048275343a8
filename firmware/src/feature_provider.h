// Audio -> the model's int8 feature window, with the TFLM microfrontend the
// training features were computed with (parameters from model_settings.h).
#ifndef NANO_KWS_FEATURE_PROVIDER_H_
#define NANO_KWS_FEATURE_PROVIDER_H_

#include <stddef.h>
#include <stdint.h>

#include "kws_features.h"

// Allocates the front end's state (once); false if it cannot.
bool feature_provider_setup();

// Forgets all audio: the front end's window, noise estimate and the feature
// window start over, as at the start of a training clip.
void feature_provider_reset();

// Runs the front end over the samples, keeping its state between calls; each
// completed slice (every KWS_FE_STRIDE_MS) is scaled into the window.
// Returns the number of new slices.
int feature_provider_add(const int16_t* samples, size_t count);

const kws_feature_window* feature_provider_window();

#endif  // NANO_KWS_FEATURE_PROVIDER_H_
