"""The host's microphone as a stream of int16 blocks (sounddevice), for `kws sim --mic` and `kws stream --mic`."""

from __future__ import annotations

import queue

import numpy as np


class MicrophoneError(RuntimeError):
    """No usable input device; the message says what sounddevice reported."""


class Microphone:
    """Mono int16 audio at `sample_rate`, delivered by PortAudio's callback into a queue the caller drains."""

    def __init__(self, sample_rate: int, block_samples: int, device: str | int | None = None) -> None:
        """`device`: a sounddevice input (index, or part of its name as `python -m sounddevice` lists them);
        None is the system default. The board's rate is asked of the device itself: the `pulse` and `default`
        devices convert from whatever the hardware runs at; a raw `hw:` device that cannot is refused by name."""
        try:
            import sounddevice
        except OSError as error:  # the PortAudio shared library is missing
            raise MicrophoneError(f"--mic needs PortAudio ({error}); install libportaudio2 or use a WAV") from None
        self._blocks: queue.Queue[np.ndarray] = queue.Queue()
        self.overflows = 0  # blocks PortAudio reported as lost
        try:
            info = sounddevice.query_devices(device, kind="input")
        except (sounddevice.PortAudioError, ValueError) as error:
            raise MicrophoneError(f"--mic: no usable audio input device {device or ''} ({error}); list them with "
                                  "`python -m sounddevice`, or use a WAV file") from None
        self.device_name = info["name"]
        try:
            sounddevice.check_input_settings(device, channels=1, dtype="int16", samplerate=sample_rate)
        except (sounddevice.PortAudioError, ValueError) as error:
            raise MicrophoneError(f"--mic: device '{self.device_name}' cannot record {sample_rate} Hz mono ({error}; "
                                  f"it runs at {info['default_samplerate']:g} Hz): choose the 'pulse' or 'default' "
                                  "device, which converts the rate") from None
        self._stream = sounddevice.InputStream(device=device, samplerate=sample_rate, channels=1, dtype="int16",
                                               blocksize=block_samples, callback=self._callback)

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


class LevelMeter:
    """The input level a user needs to see to trust a microphone: RMS and peak in dBFS over each period, and
    whether any sample clipped (a level so high the words are distorted, and the model hears that)."""

    def __init__(self, sample_rate: int, period_s: float = 5.0) -> None:
        self.period_samples = round(period_s * sample_rate)
        self._sum_squares, self._count, self._peak, self._clipped = 0.0, 0, 0, 0

    def add(self, block: np.ndarray) -> str | None:
        """Takes a block of int16 samples; at the end of each period, the line to print (else None)."""
        if len(block):
            wide = block.astype(np.int64)
            self._sum_squares += float(np.sum(wide * wide))
            self._count += len(block)
            self._peak = max(self._peak, int(np.abs(wide).max()))
            self._clipped += int(np.sum((block == 32767) | (block == -32768)))
        if self._count < self.period_samples:
            return None
        rms_dbfs = _dbfs(np.sqrt(self._sum_squares / self._count))
        line = f"mic level: rms {rms_dbfs:.0f} dBFS, peak {_dbfs(self._peak):.0f} dBFS"
        if self._clipped:
            line += f"; CLIPPING ({self._clipped} samples at full scale): lower the input gain"
        elif rms_dbfs < -60:
            line += "; near silence: is the right device chosen and unmuted?"
        self._sum_squares, self._count, self._peak, self._clipped = 0.0, 0, 0, 0
        return line


def _dbfs(value: float) -> float:
    return 20 * np.log10(max(value, 1.0) / 32768.0)
