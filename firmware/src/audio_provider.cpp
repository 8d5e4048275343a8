#include "audio_provider.h"

#include <Arduino.h>
#include <PDM.h>

#include "model_settings.h"

namespace {
// PDM gain for the Nano 33 BLE Sense: 0..80 in the library, 20 is its default
// and what micro_speech uses; higher clips loud speech close to the board.
constexpr int kPdmGain = 20;

// The Rev2 board's MP34DT06JTR output drifts for about 3.5 s after power-up
// or reset (arduino/ArduinoCore-mbed#674); those samples would poison the
// front end's noise estimate, so the first 4 s are dropped.
constexpr uint32_t kSettleMs = 4000;

// 8192 samples = 512 ms: room for the slowest inference plus a USB stall.
constexpr uint32_t kRingSamples = 8192;

// One PDM buffer: 256 samples (16 ms) per interrupt.
constexpr int kPdmBufferSamples = 256;

int16_t g_ring_storage[kRingSamples];
kws_ring g_ring;
int16_t g_pdm_chunk[kPdmBufferSamples];
volatile uint32_t g_settle_samples_left =
    static_cast<uint32_t>(KWS_SAMPLE_RATE) * kSettleMs / 1000u;

// Runs in the PDM interrupt. The library stops the PDM if a filled buffer is
// still unread when the next one completes, so the data is read right here
// and only copied into the ring, which never blocks.
void on_pdm_data() {
  int bytes = PDM.available();
  if (bytes > static_cast<int>(sizeof(g_pdm_chunk))) {
    bytes = sizeof(g_pdm_chunk);
  }
  const int read = PDM.read(g_pdm_chunk, bytes);
  const int16_t* samples = g_pdm_chunk;
  uint32_t count = static_cast<uint32_t>(read) / sizeof(int16_t);
  const uint32_t settle = g_settle_samples_left;
  if (settle > 0) {
    const uint32_t skipped = count < settle ? count : settle;
    g_settle_samples_left = settle - skipped;
    samples += skipped;
    count -= skipped;
  }
  kws_ring_write(&g_ring, samples, count);
}
}  // namespace

bool audio_provider_setup() {
  kws_ring_init(&g_ring, g_ring_storage, kRingSamples);
  PDM.onReceive(on_pdm_data);
  PDM.setBufferSize(sizeof(g_pdm_chunk));
  PDM.setGain(kPdmGain);
  return PDM.begin(1, KWS_SAMPLE_RATE) == 1;
}

kws_ring* audio_provider_ring() { return &g_ring; }

bool audio_provider_ready() { return g_settle_samples_left == 0; }
