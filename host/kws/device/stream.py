"""`kws stream`: send audio to the board in host-stream mode and print what it detects.

The board runs host audio through the same pipeline as its microphone, so this tests the model on chosen
recordings (or the host's microphone) with the board's own front end, model and recognizer. Real-time pacing
keeps the board's 5 s host timeout and its audio clock honest; `--fast` sends as fast as the link takes frames
(the serial port blocks when the board falls behind).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from kws.board.protocol import FRAME_MAX_PAYLOAD, FrameType, Garbage, Message
from kws.common.paths import shown
from kws.device.link import Connection

SAMPLES_PER_FRAME = FRAME_MAX_PAYLOAD // 2
DRAIN_TIMEOUT_S = 60.0  # a slow board may still be working through --fast audio when the last frame is sent
# Silence sent after the last file: the model sees a word for a whole 1 s window after it starts, and the recognizer
# averages its scores over up to 1 s more, so the detection of a word at the very end of a file comes after it.
TRAILING_SILENCE_S = 1.5


def detection_line(event: Message) -> str:
    """How a DET is printed: stream time in seconds, label, score."""
    return f"{event.get_int('t_ms') / 1000:9.2f} s  {event.fields['label']:<10} score {event.get_int('score')}"


def parse_detection_line(line: str) -> tuple[int, str] | None:
    """(t_ms, label) of a line that `detection_line` printed; None for any other line."""
    fields = line.split()
    if len(fields) == 5 and fields[1] == "s" and fields[3] == "score":
        return round(float(fields[0]) * 1000), fields[2]
    return None


class Streamer:
    """Sends AUDIO frames and reports the board's detections as they arrive."""

    def __init__(self, connection: Connection, sample_rate: int, fast: bool, out: TextIO) -> None:
        self.connection, self.sample_rate, self.fast, self.out = connection, sample_rate, fast, out
        self.detections: list[Message] = []
        self._start = time.monotonic()
        self._sent_samples = 0

    def on_event(self, event: Message | Garbage) -> None:
        if not isinstance(event, Message):
            return
        if event.tag == "DET":
            self.detections.append(event)
            print(detection_line(event), file=self.out, flush=True)
        elif event.tag in ("ERR", "MODE"):
            print(" ".join([event.tag, *(f"{key}={value}" for key, value in event.fields.items())]), file=self.out,
                  flush=True)

    def poll(self, timeout: float = 0.0) -> None:
        """Handles whatever the board said, waiting up to timeout for the first event."""
        event = self.connection.next_event(timeout)
        while event is not None:
            self.on_event(event)
            event = self.connection.next_event(0)

    def send(self, samples: bytes) -> None:
        """Sends int16 LE audio in frames, paced to real time unless fast."""
        for offset in range(0, len(samples), FRAME_MAX_PAYLOAD):
            chunk = samples[offset:offset + FRAME_MAX_PAYLOAD]
            if not self.fast:
                # Frame k is due when the audio before it would have been spoken.
                self.poll(max(0.0, self._start + self._sent_samples / self.sample_rate - time.monotonic()))
            self.connection.send(FrameType.AUDIO, chunk)
            self._sent_samples += len(chunk) // 2
            self.poll()

    def finish(self) -> None:
        """Hands the input back (BYE); its ACK means every frame before it was processed."""
        seq = self.connection.send(FrameType.BYE)
        self.connection.wait_for(lambda m: m.tag == "ACK" and m.fields.get("seq") == str(seq), DRAIN_TIMEOUT_S,
                                 "ACK of BYE", self.on_event)


def check_files(wavs: list[str]) -> None:
    """Reads every file before anything is sent: a bad one found halfway would cut the stream short after the
    board had heard part of it. Raises an AudioError naming each bad file and why."""
    from kws.data import audio

    problems = []
    for path in wavs:
        try:
            audio.read_pcm(path)
        except audio.AudioError as error:
            problems.append(str(error))
    if problems:
        raise audio.AudioError(f"{len(problems)} of {len(wavs)} files cannot be streamed, nothing was sent:\n  "
                               + "\n  ".join(problems))


def run(port: str | None, wavs: list[str], use_mic: bool, fast: bool, out: TextIO | None = None,
        mic_device: str | int | None = None) -> int:
    """Streams the WAV files one after another (or the microphone until Ctrl-C); returns the exit status."""
    out = out or sys.stdout
    from kws.data import audio

    check_files(wavs)
    with Connection(port, notice=lambda text: print(text, file=out, flush=True)) as connection:
        hello = connection.handshake()  # lines from before it (mic-mode detections) are not ours: dropped
        sample_rate = hello.get_int("sr")
        streamer = Streamer(connection, sample_rate, fast, out)
        print(f"streaming to {connection.port}: model {hello.fields.get('model')}, labels {hello.fields.get('labels')}",
              file=out, flush=True)
        if use_mic:
            from kws.device.mic import LevelMeter, Microphone

            microphone = Microphone(sample_rate, SAMPLES_PER_FRAME, mic_device)
            meter = LevelMeter(sample_rate)
            print(f"listening on '{microphone.device_name}' at {sample_rate} Hz; Ctrl-C stops", file=out, flush=True)
            microphone.start()
            try:
                while True:  # the microphone paces itself: send each block as it arrives
                    block = microphone.read(timeout=1.0)
                    if len(block):
                        connection.send(FrameType.AUDIO, block.astype("<i2").tobytes())
                    level = meter.add(block)
                    if level:
                        print(level, file=out, flush=True)
                    streamer.poll()
            except KeyboardInterrupt:
                pass
            finally:
                microphone.stop()
        else:
            for path in wavs:
                print(shown(path), file=out, flush=True)
                streamer.send(audio.read_audio(path, sample_rate).astype("<i2").tobytes())
            streamer.send(bytes(2 * round(TRAILING_SILENCE_S * sample_rate)))
        streamer.finish()
        labels = ", ".join(message.fields["label"] for message in streamer.detections) or "none"
        print(f"{len(streamer.detections)} detections: {labels}", file=out, flush=True)
    return 0
