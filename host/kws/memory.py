"""Flash and RAM of the firmware with a given model, against the nRF52840's 1 MB / 256 KB and the config's targets.

The model's own parts are exact (the flatbuffer is the C array compiled in; the arena is KWS_ARENA_SIZE from the
export). Measured by `kws m4` (the firmware's feature provider and model runner linked with the pinned library at
-Os, GCC 12.2; the board's GCC 7.2 may differ by some percent): the TFLM runtime with the CMSIS-NN kernels of the
default model's ops (from the link map) and the microfrontend's code and heap state. Everything else is an estimate
until the firmware is built (`pio run` prints the real totals):

- flash: the Arduino mbed core (mbed OS, USB serial) as a blank sketch for the Nano 33 BLE links it, a kernel per
  op beyond the measured set, the PDM library, and our code (kws_core 2.9 KB of .text, `make -C firmware/test
  size`; the Arduino glue guessed at about twice that);
- RAM: the mbed core's statics as a blank sketch has them, which include the main thread's 32 KB stack (a static
  array of mbed's RTOS, MBED_CONF_RTOS_MAIN_THREAD_STACK_SIZE in the variant's mbed_config.h: the front end and
  the inference use 1.1 KB of it, measured), the audio rings and buffers as declared in firmware/src, the int8
  feature window.

The estimates are order-of-magnitude figures (±50%), good for seeing whether a model comes anywhere near the limits.
"""

from __future__ import annotations

from kws.config import Config
from kws.export import BOARD_FLASH_BYTES, BOARD_RAM_BYTES
from kws.firmware import constant

ESTIMATE_UNCERTAINTY = 0.5

MBED_CORE_FLASH = 82 * 1024  # a blank sketch with the Arduino mbed core for the Nano 33 BLE
# TFLM runtime (interpreter, allocator, flatbuffer reader) with the CMSIS-NN kernels of these ops: the check image's
# link map (kws m4, speech_commands_12).
MEASURED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"})
TFLM_WITH_MEASURED_OPS_FLASH = 57_889
KERNEL_FLASH = {"AVERAGE_POOL_2D": 4 * 1024, "MAX_POOL_2D": 4 * 1024, "MEAN": 6 * 1024, "SQUEEZE": 1024}
OTHER_KERNEL_FLASH = 5 * 1024
FRONTEND_FLASH = 8_252  # microfrontend + kiss_fft + its tables, the same link map
PDM_FLASH = 5 * 1024
PROJECT_FLASH = 8 * 1024  # kws_core (2.9 KB measured) + the Arduino glue

MBED_CORE_RAM = 44 * 1024  # a blank sketch's globals with the Arduino mbed core, its 32 KB main-thread stack included
# The microfrontend's heap after FrontendPopulateState (kws m4: mallinfo), 30 ms window, 40 channels: window, FFT and
# filterbank buffers plus noise-reduction/PCAN state; the 512-point FFT buffers dominate and do not grow with the
# channel count, so one figure serves every front-end config within the ±50% stated.
FRONTEND_STATE_BYTES = 11_164


def audio_buffer_bytes() -> tuple[int, int]:
    """int16 bytes of the microphone ring plus one PDM buffer, and of the host-stream ring."""
    microphone = constant("src/audio_provider.cpp", "kRingSamples") + constant(
        "src/audio_provider.cpp", "kPdmBufferSamples")
    return 2 * microphone, 2 * constant("src/host_stream.cpp", "kRingSamples")


def budget(config: Config, tflite_bytes: int, arena_bytes: int, ops: list[str]) -> dict:
    """Flash and RAM parts (exact or estimated), totals, and the checks against the board and the targets."""
    extra_kernels = {op: KERNEL_FLASH.get(op, OTHER_KERNEL_FLASH) for op in ops if op not in MEASURED_OPS}
    flash = [
        {"part": "model flatbuffer (model_data.cc)", "bytes": tflite_bytes, "estimate": False},
        {"part": "Arduino mbed core (blank sketch)", "bytes": MBED_CORE_FLASH, "estimate": True},
        {"part": f"TFLM runtime + CMSIS-NN kernels ({', '.join(sorted(MEASURED_OPS))}), measured",
         "bytes": TFLM_WITH_MEASURED_OPS_FLASH, "estimate": False},
        {"part": "microfrontend + FFT, measured", "bytes": FRONTEND_FLASH, "estimate": False},
        *([{"part": f"more CMSIS-NN kernels ({', '.join(extra_kernels)})", "bytes": sum(extra_kernels.values()),
             "estimate": True}] if extra_kernels else []),
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
        {"part": "microfrontend state (heap), measured", "bytes": FRONTEND_STATE_BYTES, "estimate": False},
        {"part": "Arduino mbed core (blank sketch, with the 32 KB main-thread stack)", "bytes": MBED_CORE_RAM,
         "estimate": True},
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
