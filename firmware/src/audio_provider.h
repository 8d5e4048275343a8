// Microphone audio: the PDM peripheral at KWS_SAMPLE_RATE, mono, into a ring
// the main loop reads at its own pace.
#ifndef NANO_KWS_AUDIO_PROVIDER_H_
#define NANO_KWS_AUDIO_PROVIDER_H_

#include <stdint.h>

#include "kws_ring.h"

// Starts the microphone; false if the PDM library rejects the settings.
bool audio_provider_setup();

// Samples captured since setup, minus the settling period (see the .cpp).
kws_ring* audio_provider_ring();

// True once the settling period is over.
bool audio_provider_ready();

#endif  // NANO_KWS_AUDIO_PROVIDER_H_
