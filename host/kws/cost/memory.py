"""Flash and RAM of the firmware with a given model, against the nRF52840's 1 MB / 256 KB and the config's targets.

The model's own parts are exact (the flatbuffer is the C array compiled in; the arena is KWS_ARENA_SIZE from the
export). Measured by `kws m4` (the firmware's feature provider and model runner linked with the pinned library at
-Os, GCC 12.2; the board's GCC 7.2 may differ by some percent) and read from m4_measurement.json: the TFLM runtime
with the CMSIS-NN kernels of the model's ops and the microfrontend's code (from the link map), and the
microfrontend's heap state. A model without a measurement of its own gets the default model's figures as
estimates, plus a guess for each kernel the default does not use. Everything else is an estimate until the
firmware is built (`pio run` prints the real totals):

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

from kws.board.firmware import constant
from kws.config import Config
from kws.training.export import BOARD_FLASH_BYTES, BOARD_RAM_BYTES

ESTIMATE_UNCERTAINTY = 0.5

MBED_CORE_FLASH = 82 * 1024  # a blank sketch with the Arduino mbed core for the Nano 33 BLE
# A kernel the measured model does not link (guesses).
KERNEL_FLASH = {"AVERAGE_POOL_2D": 4 * 1024, "MAX_POOL_2D": 4 * 1024, "MEAN": 6 * 1024, "SQUEEZE": 1024}
OTHER_KERNEL_FLASH = 5 * 1024
PDM_FLASH = 5 * 1024
PROJECT_FLASH = 8 * 1024  # kws_core (2.9 KB measured) + the Arduino glue

MBED_CORE_RAM = 44 * 1024  # a blank sketch's globals with the Arduino mbed core, its 32 KB main-thread stack included


def audio_buffer_bytes() -> tuple[int, int]:
    """int16 bytes of the microphone ring plus one PDM buffer, and of the host-stream ring."""
    microphone = constant("src/audio_provider.cpp", "kRingSamples") + constant(
        "src/audio_provider.cpp", "kPdmBufferSamples")
    return 2 * microphone, 2 * constant("src/host_stream.cpp", "kRingSamples")


FRONTEND_NAMES = {"microfrontend": "microfrontend + FFT", "mlperf_mfcc": "MLPerf MFCC (kws_mfcc)"}


def frontend_ram(config: Config, measurement: dict, source: str, own_measurement: bool) -> list[dict]:
    """The front end's RAM: the microfrontend's heap state and the int8 window it fills stride by stride, or the
    MFCC front end's static storage (frame buffer, FFT buffer, mel ring: KWS_MFCC_STORAGE_WORDS) and the Q16 window
    it computes when the model runs (mfcc_feature_provider.cpp)."""
    window = config.num_slices * config.frontend.channels
    if config.frontend.kind == "mlperf_mfcc":
        from kws.frontends.mfcc import default_tables

        storage = 4 * default_tables().params.storage_words(config.num_slices)
        return [{"part": "MLPerf MFCC state (frame, FFT buffer, mel ring)", "bytes": storage, "estimate": False},
                {"part": f"Q16 MFCC window ({config.num_slices}x{config.frontend.channels})", "bytes": 4 * window,
                 "estimate": False}]
    return [{"part": f"int8 feature window ({config.num_slices}x{config.frontend.channels})", "bytes": window,
             "estimate": False},
            {"part": f"microfrontend state (heap), {source}", "bytes": measurement["memory"]["frontend_heap_bytes"],
             "estimate": not own_measurement}]


def budget(config: Config, tflite_bytes: int, arena_bytes: int, ops: list[str], measurement: dict,
           own_measurement: bool) -> dict:
    """Flash and RAM parts (exact, measured or estimated), totals, and the checks against the board and the targets.

    `measurement` is a `kws m4` measurement: the model's own (`own_measurement`), or the default model's, whose
    figures are then estimates for this one."""
    measured_ops = sorted({layer["op"] for layer in measurement["instructions"]["layers"]})
    code, source = measurement["memory"]["code_bytes"], "measured" if own_measurement else "as the default model's"
    extra_kernels = {op: KERNEL_FLASH.get(op, OTHER_KERNEL_FLASH) for op in ops if op not in measured_ops}
    flash = [
        {"part": "model flatbuffer (model_data.cc)", "bytes": tflite_bytes, "estimate": False},
        {"part": "Arduino mbed core (blank sketch)", "bytes": MBED_CORE_FLASH, "estimate": True},
        {"part": f"TFLM runtime + CMSIS-NN kernels ({', '.join(measured_ops)}), {source}",
         "bytes": code["tflm_runtime_and_kernels"], "estimate": not own_measurement},
        {"part": f"{FRONTEND_NAMES[config.frontend.kind]} code and tables, {source}", "bytes": code["frontend"],
         "estimate": not own_measurement},
        *([{"part": f"more CMSIS-NN kernels ({', '.join(extra_kernels)})", "bytes": sum(extra_kernels.values()),
             "estimate": True}] if extra_kernels else []),
        {"part": "PDM library", "bytes": PDM_FLASH, "estimate": True},
        {"part": "kws_core + glue", "bytes": PROJECT_FLASH, "estimate": True},
    ]
    mic_ring_bytes, host_ring_bytes = audio_buffer_bytes()
    ram = [
        {"part": "tensor arena (KWS_ARENA_SIZE)", "bytes": arena_bytes, "estimate": False},
        {"part": "microphone ring + PDM buffer", "bytes": mic_ring_bytes, "estimate": False},
        {"part": "host-stream ring", "bytes": host_ring_bytes, "estimate": False},
        *frontend_ram(config, measurement, source, own_measurement),
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
