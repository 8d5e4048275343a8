"""Flash and RAM of the firmware with a given model, against the nRF52840's 1 MB / 256 KB and the config's targets.

The model's own parts are exact (the flatbuffer is the C array compiled in; the arena is KWS_ARENA_SIZE from the
export). Everything else is an estimate until the firmware is built (`pio run` prints the real totals):

- flash for code: the Arduino mbed core (mbed OS, USB serial) as a blank sketch for the Nano 33 BLE links it, the
  TFLM runtime (interpreter, allocator, flatbuffer reader), one CMSIS-NN kernel per op the resolver registers, the
  microfrontend with its FFT, the PDM library, and our code (kws_core is 2.6 KB of .text at -Os for Cortex-M4,
  measured with arm-none-eabi-size; the Arduino glue is guessed at twice that);
- RAM: the mbed core's statics and heap use (blank sketch), the two audio rings and buffers as declared in
  firmware/src, the int8 feature window, the microfrontend state, and a stack allowance for the deepest call
  (TFLM invoke under the main loop).

The estimates are order-of-magnitude figures (±50%), good for seeing whether a model comes anywhere near the limits.
"""

from __future__ import annotations

from kws.config import Config
from kws.export import BOARD_FLASH_BYTES, BOARD_RAM_BYTES
from kws.firmware import constant

ESTIMATE_UNCERTAINTY = 0.5

MBED_CORE_FLASH = 82 * 1024  # a blank sketch with the Arduino mbed core for the Nano 33 BLE
TFLM_RUNTIME_FLASH = 50 * 1024
KERNEL_FLASH = {"CONV_2D": 10 * 1024, "DEPTHWISE_CONV_2D": 10 * 1024, "FULLY_CONNECTED": 6 * 1024,
                "SOFTMAX": 4 * 1024, "AVERAGE_POOL_2D": 4 * 1024, "MAX_POOL_2D": 4 * 1024, "MEAN": 6 * 1024,
                "RESHAPE": 1024, "SQUEEZE": 1024}
OTHER_KERNEL_FLASH = 5 * 1024
FRONTEND_FLASH = 12 * 1024  # microfrontend + kiss_fft + its log/filterbank tables
PDM_FLASH = 5 * 1024
PROJECT_FLASH = 8 * 1024  # kws_core (2.6 KB measured) + the Arduino glue

MBED_CORE_RAM = 44 * 1024  # a blank sketch's globals with the Arduino mbed core
# Window, FFT and filterbank buffers plus noise-reduction/PCAN state; the 512-point FFT buffers dominate and do not
# grow with the channel count, so one figure serves every front-end config within the ±50% stated.
FRONTEND_STATE_BYTES = 6 * 1024
STACK_BYTES = 8 * 1024


def audio_buffer_bytes() -> tuple[int, int]:
    """int16 bytes of the microphone ring plus one PDM buffer, and of the host-stream ring."""
    microphone = constant("src/audio_provider.cpp", "kRingSamples") + constant(
        "src/audio_provider.cpp", "kPdmBufferSamples")
    return 2 * microphone, 2 * constant("src/host_stream.cpp", "kRingSamples")


def budget(config: Config, tflite_bytes: int, arena_bytes: int, ops: list[str]) -> dict:
    """Flash and RAM parts (exact or estimated), totals, and the checks against the board and the targets."""
    kernels = {op: KERNEL_FLASH.get(op, OTHER_KERNEL_FLASH) for op in ops}
    flash = [
        {"part": "model flatbuffer (model_data.cc)", "bytes": tflite_bytes, "estimate": False},
        {"part": "Arduino mbed core (blank sketch)", "bytes": MBED_CORE_FLASH, "estimate": True},
        {"part": "TFLM runtime", "bytes": TFLM_RUNTIME_FLASH, "estimate": True},
        {"part": f"CMSIS-NN kernels ({', '.join(ops)})", "bytes": sum(kernels.values()), "estimate": True},
        {"part": "microfrontend + FFT", "bytes": FRONTEND_FLASH, "estimate": True},
        {"part": "PDM library", "bytes": PDM_FLASH, "estimate": True},
        {"part": "kws_core + glue", "bytes": PROJECT_FLASH, "estimate": True},
    ]
    window = config.num_slices * config.frontend.channels
    mic_ring_bytes, host_ring_bytes = audio_buffer_bytes()
    ram = [
        {"part": "tensor arena (KWS_ARENA_SIZE)", "bytes": arena_bytes, "estimate": False},
        {"part": "microphone ring + PDM buffer", "bytes": mic_ring_bytes, "estimate": False},
        {"part": "host-stream ring", "bytes": host_ring_bytes, "estimate": False},
        {"part": f"int8 feature window ({config.num_slices}x{config.frontend.channels})", "bytes": window,
         "estimate": False},
        {"part": "microfrontend state", "bytes": FRONTEND_STATE_BYTES, "estimate": True},
        {"part": "Arduino mbed core (blank sketch)", "bytes": MBED_CORE_RAM, "estimate": True},
        {"part": "stack allowance", "bytes": STACK_BYTES, "estimate": True},
    ]
    flash_total, ram_total = sum(p["bytes"] for p in flash), sum(p["bytes"] for p in ram)
    return {
        "flash": {"parts": flash, "total_bytes": flash_total, "board_bytes": BOARD_FLASH_BYTES,
                  "board_share": round(flash_total / BOARD_FLASH_BYTES, 3),
                  "model_target_bytes": config.targets.flash_bytes,
                  "model_within_target": tflite_bytes <= config.targets.flash_bytes},
        "ram": {"parts": ram, "total_bytes": ram_total, "board_bytes": BOARD_RAM_BYTES,
                "board_share": round(ram_total / BOARD_RAM_BYTES, 3),
                "arena_target_bytes": config.targets.arena_bytes,
                "arena_within_target": arena_bytes <= config.targets.arena_bytes},
        "estimate_uncertainty": ESTIMATE_UNCERTAINTY,
    }
