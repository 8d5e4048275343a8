"""The serial link to a board (or `kws sim`), shared by `kws monitor`, `kws stream` and `kws bench`.

A reader thread turns whatever the port returns into protocol events (`protocol.LineDecoder`) and queues them, so
no line is lost while the caller is busy sending audio. When the port dies (USB unplugged, board reset, the virtual
board's `disconnect()`), the reader reopens the same path with backoff and says "reconnected"; events already
received stay queued. A HELLO announcing another protocol version stops everything with an error naming both.

Only pyserial and the pure-Python protocol module are imported here, so `kws monitor` starts instantly.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import serial
from serial.tools import list_ports

from kws.board.protocol import (
    PROTOCOL_VERSION,
    FrameType,
    Garbage,
    LineDecoder,
    Message,
    encode_frame,
    hello_payload,
)

ARDUINO_USB_VID = 0x2341
BAUD_RATE = 115200  # ignored by USB CDC, but pyserial needs one
RECONNECT_TIMEOUT_S = 30.0
# A board that is slow to read only slows the sender down; one that takes no byte at all for this long is stuck.
WRITE_STALL_TIMEOUT_S = 30.0
# This many unreadable lines in a row are not line noise but another device or speed on the port: say so, once.
GARBAGE_HINT_LINES = 20
_READ_TIMEOUT_S = 0.05  # how long a read waits, so the reader notices close() quickly


class DeviceError(RuntimeError):
    """The board cannot be found, opened or understood; the message names the port."""


class ProtocolMismatch(DeviceError):
    """The board speaks another protocol version than these host tools."""


def next_queued_event(events: queue.Queue, timeout: float | None) -> Message | Garbage | None:
    """The next event a reader thread queued, waiting up to timeout seconds (None if none came); an error it queued
    is raised here, in the caller's thread."""
    try:
        event = events.get(timeout=timeout)
    except queue.Empty:
        return None
    if isinstance(event, DeviceError):
        raise event
    return event


def find_port() -> str:
    """The serial port of the one connected Arduino (USB vendor id 0x2341)."""
    ports = [port for port in list_ports.comports() if port.vid == ARDUINO_USB_VID]
    if not ports:
        raise DeviceError("no Arduino board found (no serial port with USB vendor id 0x2341): plug it in or "
                          "pass --port (e.g. the path `kws sim` prints)")
    if len(ports) > 1:
        names = ", ".join(f"{port.device} ({port.description})" for port in ports)
        raise DeviceError(f"several Arduino boards found: {names}; choose one with --port")
    return ports[0].device


def port_user(port: str) -> str:
    """Who holds the lock on a port, from /proc/locks (Linux): "pid N (command line)", else "another program"."""
    try:
        stat = os.stat(port)
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another program"
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in locks:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device:
            try:
                command = Path(f"/proc/{fields[4]}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                command = "?"
            return f"pid {fields[4]} ({command})"
    return "another program"


class Connection:
    """An open link: `events()`/`next_event()` give device lines in order, `send()` writes frames."""

    def __init__(self, port: str | None = None, reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
                 notice: Callable[[str], None] | None = None) -> None:
        self.port = port or find_port()
        self.reconnect_timeout_s = reconnect_timeout_s
        self._notice = notice or (lambda text: print(text, file=sys.stderr, flush=True))
        self._events: queue.Queue[Message | Garbage | DeviceError] = queue.Queue()
        self._decoder = LineDecoder()
        self._garbage_before = 0  # garbage counted by decoders of earlier connections
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self._seq = 0
        self._garbage_run = 0  # unreadable lines since the last good one
        self.reconnects = 0
        self._serial = self._open()
        self._reader = threading.Thread(target=self._read_loop, name=f"reader {self.port}", daemon=True)
        self._reader.start()

    @property
    def garbage(self) -> int:
        """Lines that failed the CRC or did not parse, over all connections."""
        return self._garbage_before + self._decoder.garbage

    def _open(self) -> serial.Serial:
        """Opens the port for this program alone (an advisory lock, as pyserial's exclusive mode takes): two tools
        reading one port would each get half the lines."""
        try:
            return serial.Serial(self.port, BAUD_RATE, timeout=_READ_TIMEOUT_S, exclusive=True)
        except (serial.SerialException, OSError) as error:
            if "exclusively lock" in str(error):
                raise DeviceError(f"{self.port}: in use by {port_user(self.port)}; close it first (one program "
                                  "per port: kws monitor, stream and bench each need the port alone)") from None
            raise DeviceError(f"{self.port}: cannot open ({error})") from None

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=2)
        self._serial.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ----

    def _read_loop(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError, TypeError) as error:  # TypeError: pyserial on a closed fd
                if self._closed.is_set() or not self._reconnect(error):
                    return
                continue
            for event in self._decoder.feed(data):
                self._count_garbage_run(event)
                self._events.put(self._check(event))

    def _count_garbage_run(self, event: Message | Garbage) -> None:
        if isinstance(event, Message):
            self._garbage_run = 0
            return
        self._garbage_run += 1
        if self._garbage_run == GARBAGE_HINT_LINES:
            self._notice(f"{self.port}: {GARBAGE_HINT_LINES} unreadable lines in a row: wrong port or baud rate? "
                         "(a board running nano-kws firmware, or kws sim, sends CRC-checked text lines)")

    def _check(self, event: Message | Garbage) -> Message | Garbage | DeviceError:
        if isinstance(event, Message) and event.tag == "HELLO":
            proto = event.fields.get("proto")
            if proto != str(PROTOCOL_VERSION):
                return ProtocolMismatch(f"{self.port}: the board speaks protocol version {proto}, these host tools "
                                        f"speak version {PROTOCOL_VERSION}: update the firmware or the host tools")
        return event

    def _reconnect(self, cause: Exception) -> bool:
        """Reopens the port with growing pauses; False (and a queued error) when it stays gone."""
        self._serial.close()
        # A line cut by the disconnect can never be completed; a fresh decoder keeps it from swallowing the first
        # line of the new connection.
        self._garbage_before += self._decoder.garbage
        self._decoder = LineDecoder()
        self._notice(f"{self.port}: disconnected ({cause}), reconnecting")
        deadline, pause = time.monotonic() + self.reconnect_timeout_s, 0.05
        while not self._closed.is_set():
            try:
                self._serial = self._open()
            except DeviceError as error:
                if time.monotonic() > deadline:
                    self._events.put(DeviceError(f"{self.port}: disconnected and not back within "
                                                 f"{self.reconnect_timeout_s:.0f} s (last error: {error})"))
                    return False
                time.sleep(pause)
                pause = min(1.0, pause * 2)
                continue
            self.reconnects += 1
            self._notice(f"{self.port}: reconnected")
            return True
        return False

    def next_event(self, timeout: float | None = None) -> Message | Garbage | None:
        """The next line event, waiting up to timeout seconds (None if none came). Raises the reader's errors."""
        return next_queued_event(self._events, timeout)

    def wait_for(self, matches: Callable[[Message], bool], timeout: float, what: str,
                 on_other: Callable[[Message | Garbage], None] | None = None) -> Message:
        """The first message that matches, handing every other event to on_other; an ERR line is an error."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self.next_event(left)
            if isinstance(event, Message) and matches(event):
                return event
            if isinstance(event, Message) and event.tag == "ERR":
                code = event.fields.get("code")
                if code == "proto":
                    raise ProtocolMismatch(f"{self.port}: the board refused protocol version {PROTOCOL_VERSION} "
                                           f"({event.fields.get('detail', '')})")
                raise DeviceError(f"{self.port}: the board answered ERR code={code} "
                                  f"detail={event.fields.get('detail', '')} while waiting for {what}")
            if event is not None and on_other is not None:
                on_other(event)
        raise DeviceError(f"{self.port}: no {what} within {timeout:g} s")

    # ---- writing ----

    def send(self, frame_type: int, payload: bytes = b"") -> int:
        """Writes one frame, once more after a reconnection if the port died under it; returns its sequence number.

        A slow board only slows this down (see `_write`): a frame is never cut short by a timeout, which would
        corrupt it and lose the audio in it."""
        with self._write_lock:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFFFF
            frame = encode_frame(frame_type, seq, payload)
            reconnects = self.reconnects
            try:
                self._write(frame)
                return seq
            except DeviceError:
                raise
            except (serial.SerialException, OSError, TypeError) as error:
                failure = error
            deadline = time.monotonic() + self.reconnect_timeout_s + 1
            while self.reconnects == reconnects and time.monotonic() < deadline and not self._closed.is_set():
                time.sleep(0.02)
            try:
                self._write(frame)
                return seq
            except (serial.SerialException, OSError, TypeError):
                raise DeviceError(f"{self.port}: cannot write ({failure})") from None

    def _write(self, frame: bytes) -> None:
        """Writes all of frame, waiting with growing pauses while the port takes nothing (the board reads slower
        than the host sends, its buffer is full); a DeviceError only when it takes nothing for
        WRITE_STALL_TIMEOUT_S. The port is non-blocking (pyserial opens it so): each write reports what it took."""
        pending = memoryview(frame)
        last_progress, pause = time.monotonic(), 0.001
        while pending:
            try:
                written = os.write(self._serial.fileno(), pending)
            except BlockingIOError:
                written = 0
            if written:
                pending, last_progress, pause = pending[written:], time.monotonic(), 0.001
                continue
            if time.monotonic() - last_progress > WRITE_STALL_TIMEOUT_S:
                raise DeviceError(f"{self.port}: the board took no data for {WRITE_STALL_TIMEOUT_S:g} s")
            select.select([], [self._serial.fileno()], [], pause)
            pause = min(0.1, pause * 2)

    def handshake(self, timeout: float = 5.0, on_other: Callable[[Message | Garbage], None] | None = None) -> Message:
        """Takes the board's input over (HELLO frame) and returns its HELLO line."""
        seq = self.send(FrameType.HELLO, hello_payload())
        # Wait for the ACK first: a HELLO queued before it is a start-up or periodic one, not the answer.
        self.wait_for(lambda m: m.tag == "ACK" and m.fields.get("seq") == str(seq), timeout, "ACK of HELLO", on_other)
        return self.wait_for(lambda m: m.tag == "HELLO", timeout, "HELLO answer to the handshake", on_other)

