"""The host's microphone as a stream of int16 blocks (sounddevice), for `kws sim --mic` and `kws stream --mic`."""

from __future__ import annotations

import queue

import numpy as np


class MicrophoneError(RuntimeError):
    """No usable input device; the message says what sounddevice reported."""


class Microphone:
    """Mono int16 audio at `sample_rate`, delivered by PortAudio's callback into a queue the caller drains."""

    def __init__(self, sample_rate: int, block_samples: int) -> None:
        try:
            import sounddevice
        except OSError as error:  # the PortAudio shared library is missing
            raise MicrophoneError(f"--mic needs PortAudio ({error}); install libportaudio2 or use a WAV") from None
        self._blocks: queue.Queue[np.ndarray] = queue.Queue()
        self.overflows = 0  # blocks PortAudio reported as lost
        try:
            sounddevice.query_devices(kind="input")
            self._stream = sounddevice.InputStream(samplerate=sample_rate, channels=1, dtype="int16",
                                                   blocksize=block_samples, callback=self._callback)
        except (sounddevice.PortAudioError, ValueError) as error:
            raise MicrophoneError(f"--mic: no usable audio input device ({error}); use a WAV file instead") from None

    def _callback(self, data: np.ndarray, frames: int, time: object, status: object) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        self._blocks.put(data[:, 0].copy())

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()

    def read(self, timeout: float | None = None) -> np.ndarray:
        """The next block, waiting up to timeout seconds (None: forever); an empty array if none came."""
        try:
            return self._blocks.get(timeout=timeout)
        except queue.Empty:
            return np.zeros(0, np.int16)

    def read_available(self) -> np.ndarray:
        """Everything captured so far, without waiting."""
        blocks = []
        while True:
            try:
                blocks.append(self._blocks.get_nowait())
            except queue.Empty:
                return np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
