"""`kws sim`: a virtual board on a pseudo-terminal, speaking exactly the board's serial protocol.

Host tools (monitor, stream, bench) cannot tell it from a Nano 33 BLE Sense except by `timing=host` in its HELLO:
its latency fields are host wall-clock microseconds, and `est_m4_us` adds the Cortex-M4 inference time from the
model's instruction count (measured by `kws m4` when it has an m4_measurement.json, else `kws.cost.estimate`'s estimate) at
the config's cycles per instruction. Everything the board computes is the board's own code: the streaming
pipeline (`kws.board.pipeline`) runs the microfrontend, the firmware's scaling and recognizer, frames are decoded by the
firmware's decoder and lines built by its line builder (`kws.board.core`).

One thread owns the pty and the pipeline; other threads talk to it through `_call`, so tests can inject bytes,
send lines or drop the connection at well-defined points of the loop.
"""

from __future__ import annotations

import errno
import os
import pty
import queue
import select
import signal
import struct
import sys
import threading
import time
import tty
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kws import __version__
from kws.board import core
from kws.board.firmware import hello_interval_s, host_timeout_s, stats_interval_s
from kws.board.pipeline import Step, StreamingPipeline
from kws.board.protocol import PROTOCOL_VERSION, FrameType
from kws.evaluation.evaluate import ModelDir
from kws.evaluation.runtime import model_id

HELLO_INTERVAL_S = hello_interval_s()
HOST_TIMEOUT_S = host_timeout_s()
STATS_INTERVAL_S = stats_interval_s()
OUTPUT_LIMIT = 64 * 1024  # unread output kept for a slow host; beyond it whole lines are dropped and counted
_TICK_S = 0.02  # loop wake-up when idle: one stride of own audio


class SimError(RuntimeError):
    """The virtual board cannot start (bad audio file, no microphone, pty trouble)."""


class LoopedAudio:
    """A recording played in real time, from the start again when it ends (`--audio`); zeros for silence."""

    def __init__(self, samples: np.ndarray) -> None:
        self._samples = np.asarray(samples, np.int16) if len(samples) else np.zeros(1, np.int16)
        self._position = 0

    def take(self, n: int) -> np.ndarray:
        indices = (self._position + np.arange(n)) % len(self._samples)
        self._position = (self._position + n) % len(self._samples)
        return self._samples[indices]


class VirtualBoard:
    """The board's firmware loop on a pty. `start()` returns the slave path host tools open."""

    def __init__(self, model_dir: ModelDir | str | Path, backend: str = "tflm", audio: np.ndarray | None = None,
                 microphone: object | None = None, link: str | Path | None = None,
                 hello_interval_s: float = HELLO_INTERVAL_S, host_timeout_s: float = HOST_TIMEOUT_S,
                 stats_interval_s: float = STATS_INTERVAL_S, protocol_version: int = PROTOCOL_VERSION,
                 stage_listener: Callable[[str], None] | None = None, ble_hci: str | None = None) -> None:
        self.model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
        config = self.config = self.model_dir.config
        # stage_listener: told of each front-end stride and inference, where the firmware raises its marker pins
        # (kws.device.virtual_ppk2 turns them into a current trace).
        self.pipeline = StreamingPipeline(self.model_dir, backend, stage_listener)
        self.labels = config.labels
        # Own input when no host streams: a microphone (kws.device.mic.Microphone), a looped recording, or silence.
        self._microphone = microphone
        self._recording = LoopedAudio(audio if audio is not None else np.zeros(config.stride_samples, np.int16))
        self.link = Path(link) if link else None
        self.hello_interval_s, self.host_timeout_s = hello_interval_s, host_timeout_s
        self.stats_interval_s = stats_interval_s
        self.protocol_version = protocol_version  # tests announce another version to check the hosts refuse it
        from kws.cost.m4_record import inference_instructions

        board = config.board
        instructions, source = inference_instructions(self.model_dir.path, self.model_dir.tflite)
        self.est_m4_us = round(instructions * board.cycles_per_instruction / board.clock_hz * 1e6)
        # HELLO says which, so that kws bench labels the figure it reports as what it is
        self.est_m4_source = "measured" if source.startswith("measured") else "estimated"
        self.model_id = model_id(self.model_dir.tflite)
        self.sent: Counter[str] = Counter()  # lines sent per tag (tests count DETs from the board side)
        self.dropped_lines = 0
        self.mode = "mic"
        self._clip_open = False  # between CLIP_BEGIN and CLIP_END: classified at the end only
        self.path: str | None = None
        self._master = self._slave = -1
        self._output = bytearray()
        self._requests: queue.Queue[tuple[Callable[[], object], threading.Event, list]] = queue.Queue()
        self._wake_read, self._wake_write = os.pipe()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.steps = self.bad_frames = self.overruns = 0
        self._fe: list[int] = []  # front-end and inference times since the last STATS
        self._inf: list[int] = []
        # Bluetooth LE (`kws sim --ble`): the board's GATT service on a virtual radio, its host adapter on ble_hci.
        self.ble = None
        if ble_hci is not None:
            from kws.board.ble_peripheral import BlePeripheral

            self.ble = BlePeripheral(self.model_id, ble_hci)

    # ---- life cycle ----

    def start(self) -> str:
        """Opens the pty, starts the loop and sends the start-up HELLO; returns the slave path."""
        if self.ble is not None:  # first: a radio that cannot start leaves nothing to tidy up
            from kws.board.ble_peripheral import BleStartError

            try:
                self.ble.start()
            except BleStartError as error:
                raise SimError(str(error)) from error
            self.ble.set_info(self._hello_fields())
        self._open_pty()
        now = time.monotonic()
        self._frame_seen = False
        self._next_hello = now
        self._next_stats = now + self.stats_interval_s
        self._last_frame = now
        self._audio_start, self._audio_samples = now, 0
        if self._microphone is not None:
            self._microphone.start()
        self._thread = threading.Thread(target=self._run, name="virtual-board", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wake_write, b"x")
        if self._thread:
            self._thread.join(timeout=5)
        if self._microphone is not None:
            self._microphone.stop()
        if self.ble is not None:
            self.ble.stop()
        self._close_pty()
        if self.link and self.link.is_symlink() and os.readlink(self.link) == self.path:
            self.link.unlink()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def disconnect(self) -> str:
        """Unplugs and replugs: the host's open port dies, a new pty appears behind the same link path."""
        def replug() -> str:
            self._close_pty()
            self._output.clear()
            self._open_pty()
            return self.path

        return self._call(replug)

    def _open_pty(self) -> None:
        self._master, self._slave = pty.openpty()
        self._decoder = core.FrameDecoder()  # a new connection starts between frames
        tty.setraw(self._slave)  # binary frames and "\n" lines pass untouched (no echo, no CR/LF mapping)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        if self.link:
            # Replace atomically so a reconnecting host never sees the link missing.
            temporary = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(self.path)
            os.replace(temporary, self.link)

    def _close_pty(self) -> None:
        # The board keeps the slave open too, so the master survives a host closing its side; closing both is
        # what a USB unplug looks like to the host.
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    # ---- requests from other threads ----

    def _call(self, function: Callable[[], object]) -> object:
        """Runs function on the board's thread between two loop iterations and returns its result."""
        done, result = threading.Event(), []
        self._requests.put((function, done, result))
        os.write(self._wake_write, b"x")
        if not done.wait(timeout=10):
            raise SimError("the virtual board's loop did not answer within 10 s")
        return result[0]

    def send_line(self, tag: str, fields: dict) -> None:
        """Sends one protocol line as the firmware would (tests use it to script DETs)."""
        self._call(lambda: self._send(tag, fields))

    def inject(self, data: bytes) -> None:
        """Puts raw bytes on the line, as electrical noise or a firmware bug would."""
        self._call(lambda: self._output.extend(data))

    # ---- the loop ----

    def _run(self) -> None:
        while not self._stopping.is_set():
            readable, writable = [self._wake_read, self._master], [self._master] if self._output else []
            try:
                ready_read, ready_write, _ = select.select(readable, writable, [], _TICK_S)
            except (OSError, ValueError):  # the pty was swapped between building the lists and select
                continue
            if self._wake_read in ready_read:
                os.read(self._wake_read, 4096)
                self._serve_requests()
            if self._master in ready_read:
                self._receive()
            self._flush()
            self._timers(time.monotonic())
        self._serve_requests()

    def _serve_requests(self) -> None:
        while True:
            try:
                function, done, result = self._requests.get_nowait()
            except queue.Empty:
                return
            result.append(function())
            self._flush()
            done.set()

    def _receive(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError as error:  # EIO: nothing on the other side right now
            if error.errno not in (errno.EIO, errno.EAGAIN):
                raise
            return
        self._frames(self._decoder.feed(data))
        self._decoder.idle(_ms(time.monotonic()), fed=True)

    def _frames(self, events: list[core.Frame | core.FrameError]) -> None:
        for event in events:
            self._last_frame = time.monotonic()
            self._frame_seen = True
            if isinstance(event, core.FrameError):
                self.bad_frames += 1
                self._send("ERR", {"code": event.kind, "seq": event.seq, "detail": f"frame_type_{event.type}"})
            else:
                self._handle(event)

    def _handle(self, frame: core.Frame) -> None:
        if frame.type == FrameType.HELLO:
            if frame.payload[0] != self.protocol_version:
                self._send("ERR", {"code": "proto", "seq": frame.seq,
                                   "detail": f"host_{frame.payload[0]}_device_{self.protocol_version}"})
                return
            self._set_mode("host", "handshake")
            self._clip_open = False  # a new host: an earlier one's clip is abandoned
            self._send("ACK", {"seq": frame.seq, "type": frame.type})
            self._hello()
        elif self.mode != "host":
            # Audio and clips only make sense once the host has taken the input over with HELLO.
            self._send("ERR", {"code": "mode", "seq": frame.seq, "detail": "send_HELLO_first"})
        elif frame.type == FrameType.AUDIO:
            self._steps(self.pipeline.feed(np.frombuffer(frame.payload, "<i2")))
        elif frame.type == FrameType.CLIP_BEGIN:
            self.pipeline.reset()
            self._clip_open = True
            self._send("ACK", {"seq": frame.seq, "type": frame.type})
        elif frame.type == FrameType.CLIP_END:
            self._clip_open = False
            self._result(struct.unpack("<I", frame.payload)[0])
            # The board's recognizer heard nothing of the clip (no stride inference inside one); this one was fed.
            self.pipeline.recognizer.reset()
        elif frame.type == FrameType.BYE:
            # The decoder is not reset: BYE ends on a frame boundary and a frame right behind it must survive.
            self._set_mode("mic", "command")
            self._send("ACK", {"seq": frame.seq, "type": frame.type})

    def _result(self, clip_id: int) -> None:
        start = time.perf_counter_ns()
        scores = self.pipeline.classify_window()
        index = int(scores.argmax())
        self._send("RESULT", {"clip": clip_id, "label": self.labels[index], "idx": index, "score": int(scores[index]),
                              "scores": scores, "fe_us": self.pipeline.clip_fe_us,
                              "inf_us": self.pipeline.last_inf_us,
                              "step_us": (time.perf_counter_ns() - start) // 1000, "est_m4_us": self.est_m4_us})

    def _steps(self, steps: list[Step]) -> None:
        for step in steps:
            self._count_step(step)
            if step.detection is not None and not self._clip_open:
                index = step.detection.label_index
                self._send("DET", {"t_ms": step.time_ms, "label": self.labels[index], "idx": index,
                                   "score": step.detection.score, "fe_us": step.fe_us, "inf_us": step.inf_us,
                                   "step_us": step.step_us, "est_m4_us": self.est_m4_us})
                if self.ble is not None:  # as the firmware's responder: serial line and notification together
                    self.ble.detection(index, step.detection.score, step.time_ms, step.fe_us, step.inf_us,
                                       step.step_us)

    def _timers(self, now: float) -> None:
        if self._decoder.idle(_ms(now), fed=False):  # a frame the host cut off: counted, no ERR (as the board)
            self.bad_frames += 1
            self._frames(self._decoder.feed(b""))
        if self.mode == "host" and now - self._last_frame > self.host_timeout_s:
            self._decoder.reset()
            self._set_mode("mic", "timeout")
        if self.mode == "mic":
            self._own_audio(now)
        if not self._frame_seen and now >= self._next_hello:
            self._hello()
            self._next_hello = now + self.hello_interval_s
        if now >= self._next_stats:
            self._stats()
            self._next_stats = now + self.stats_interval_s

    def _own_audio(self, now: float) -> None:
        if self._microphone is not None:
            samples = self._microphone.read_available()
            self.overruns = self._microphone.overflows
        else:
            # Real time: as many samples as the wall clock says are due since the input became ours.
            due = int((now - self._audio_start) * self.config.audio.sample_rate) - self._audio_samples
            if due < self.config.stride_samples:
                return
            self._audio_samples += due
            samples = self._recording.take(due)
        if len(samples):
            self._steps(self.pipeline.feed(samples))

    def _set_mode(self, mode: str, reason: str) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        self._clip_open = False
        self.pipeline.reset()  # as the firmware's on_input_changed: the new input starts a new stream
        if mode == "mic":
            self._audio_start, self._audio_samples = time.monotonic(), 0
        self._send("MODE", {"mode": mode, "reason": reason})
        if self.ble is not None:
            self.ble.set_info(self._hello_fields())

    # ---- lines ----

    def _hello(self) -> None:
        self._send("HELLO", self._hello_fields())

    def _hello_fields(self) -> dict:
        config = self.config
        return {"proto": self.protocol_version, "fw": f"sim-{__version__}", "model": config.name,
                "model_id": self.model_id, "labels": list(self.labels), "sr": config.audio.sample_rate,
                "stride_ms": config.frontend.stride_ms, "clock_hz": config.board.clock_hz, "mode": self.mode,
                "timing": "host", "est_m4": self.est_m4_source, "est_m4_us": self.est_m4_us,
                **self._recognizer_fields()}

    def _recognizer_fields(self) -> dict:
        """HELLO's recognizer setting, as the firmware's pipeline_describe_recognizer sends it."""
        from kws.training.firmware_files import header_calibrated

        rec, header = self.config.recognizer, self.model_dir.path / "model_settings.h"
        return {"avg_ms": rec.average_window_ms, "thresholds": list(self.config.label_thresholds),
                "suppress_ms": rec.suppression_ms, "min_count": rec.minimum_count,
                "calibrated": int(header.exists() and header_calibrated(header.read_text()))}

    def _count_step(self, step: Step) -> None:
        self.steps += 1
        self._fe.append(step.fe_us)
        self._inf.append(step.inf_us)

    def _stats(self) -> None:
        def average(values: list[int]) -> int:
            return sum(values) // len(values) if values else 0

        fields = {"t_ms": self.pipeline.time_ms, "steps": self.steps, "fe_us_avg": average(self._fe),
                  "fe_us_max": max(self._fe, default=0), "inf_us_avg": average(self._inf),
                  "inf_us_max": max(self._inf, default=0), "overruns": self.overruns, "bad_frames": self.bad_frames,
                  "lines_dropped": self.dropped_lines, "free_ram": "na", "mode": self.mode}
        self._send("STATS", fields)
        if self.ble is not None:
            self.ble.set_stats(fields)
        self._fe.clear()
        self._inf.clear()

    def _send(self, tag: str, fields: dict) -> None:
        line = core.format_line(tag, fields)
        if len(self._output) + len(line) > OUTPUT_LIMIT:
            self.dropped_lines += 1
            return
        self._output.extend(line)
        self.sent[tag] += 1

    def _flush(self) -> None:
        while self._output and self._master >= 0:
            try:
                written = os.write(self._master, self._output)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno == errno.EIO:
                    return
                raise
            del self._output[:written]


def _ms(seconds: float) -> int:
    """The board's millisecond clock (uint32, wrapping) from a monotonic time."""
    return int(seconds * 1000) & 0xFFFFFFFF


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ble_hint(hci: str, name: str) -> str:
    """How host tools reach the virtual radio's adapter."""
    if hci.startswith("tcp-server:"):
        return f"kws monitor --ble '{name}' --hci tcp-client:{hci.removeprefix('tcp-server:')}"
    if hci.startswith("pty:"):
        return f"btattach -B {hci.removeprefix('pty:')} -P h4 makes it a BlueZ adapter; then kws monitor --ble '{name}'"
    return f"kws monitor --ble '{name}' --hci <the other end of {hci}>"


def run(model: str, audio_path: str | None, use_mic: bool, link: str | None, backend: str,
        virtual_ppk2: bool = False, ble_hci: str | None = None) -> int:
    """`kws sim`: runs a virtual board (and with virtual_ppk2 a virtual PPK2 measuring it, with ble_hci its
    Bluetooth LE service on a virtual radio) until Ctrl-C."""
    from kws.data import audio as audio_module

    model_dir = ModelDir(model)
    sample_rate = model_dir.config.audio.sample_rate
    recording = audio_module.read_audio(audio_path, sample_rate) if audio_path else None
    microphone = None
    if use_mic:
        from kws.device.mic import Microphone

        microphone = Microphone(sample_rate, model_dir.config.stride_samples)
    ppk2 = None
    if virtual_ppk2:
        from kws.device.virtual_ppk2 import VirtualPPK2

        ppk2 = VirtualPPK2()
        print(f"virtual PPK2 on {ppk2.start()}: kws bench --power ppk2:{ppk2.path} measures this board", flush=True)
    board = VirtualBoard(model_dir, backend, audio=recording, microphone=microphone, link=link,
                         stage_listener=ppk2.board_stage if ppk2 else None, ble_hci=ble_hci)
    # `kill` (a test harness, a service manager) should tidy up like Ctrl-C: close the pty, remove the link.
    signal.signal(signal.SIGTERM, _interrupt)
    path = board.start()
    if board.ble is not None:
        # `kill -USR1`: the radio link fades out, as a board carried out of range
        signal.signal(signal.SIGUSR1, lambda _signum, _frame: board.ble.drop())
        print(f"Bluetooth LE: '{board.ble.name}' advertising on a virtual radio; {_ble_hint(ble_hci, board.ble.name)}",
              flush=True)
    source = "microphone" if use_mic else audio_path or "silence"
    print(f"virtual board on {path}" + (f" (link {board.link})" if board.link else "")
          + f": model {model_dir.config.name}, backend {backend}, input {source}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print(f"stopped; sent {dict(board.sent)}", file=sys.stderr)
        return 0
    finally:
        board.stop()
        if ppk2:
            ppk2.stop()
