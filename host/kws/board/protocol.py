"""Host side of the nano-kws serial protocol (docs/protocol.md, version 1).

Host -> device: binary frames (`encode_frame`). Device -> host: text lines (`LineDecoder`).
Pure Python with no third-party imports, so monitoring tools start instantly; the device side of the same protocol is
the C code in firmware/lib/kws_core, reachable from Python through `kws.board.core`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum

PROTOCOL_VERSION = 1

FRAME_SYNC = b"\xa5\x5a"
FRAME_MAX_PAYLOAD = 1024
LINE_MAX = 512  # longest line the host accepts, without its "\n" (and a "\r" before it)
VALUE_MAX = 200


class FrameType(IntEnum):
    """Host -> device frame types."""

    HELLO = 0x01  # u8 protocol version
    AUDIO = 0x02  # int16 LE samples
    CLIP_BEGIN = 0x03  # u32 LE clip id
    CLIP_END = 0x04  # u32 LE clip id
    BYE = 0x05  # empty


def crc8(data: bytes) -> int:
    """CRC-8 of a line body: polynomial 0x07, initial 0x00, no reflection, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC16_TABLE = _crc16_table()  # a table: audio streams at 32 KB/s go through this


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of a frame: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[(crc >> 8) ^ byte]
    return crc


def encode_frame(frame_type: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame: sync, type, seq and length (LE), payload, CRC-16 over type..payload (LE).

    Any type byte is allowed so tests can send types the device rejects; seq must already be reduced mod 65536.
    """
    if not 0 <= frame_type <= 0xFF:
        raise ValueError(f"frame type {frame_type} is not a byte")
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq {seq} is not in 0..65535")
    if len(payload) > FRAME_MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the {FRAME_MAX_PAYLOAD}-byte limit")
    body = struct.pack("<BHH", frame_type, seq, len(payload)) + bytes(payload)
    return FRAME_SYNC + body + struct.pack("<H", crc16_ccitt(body))


def hello_payload(version: int = PROTOCOL_VERSION) -> bytes:
    return struct.pack("<B", version)


def clip_payload(clip_id: int) -> bytes:
    """Payload of CLIP_BEGIN and CLIP_END."""
    return struct.pack("<I", clip_id)


def split_audio(pcm: bytes, max_payload: int = FRAME_MAX_PAYLOAD) -> list[bytes]:
    """Splits int16 LE audio into AUDIO payloads of at most max_payload bytes, never splitting a sample."""
    if len(pcm) % 2:
        raise ValueError("int16 audio has an even number of bytes")
    step = max_payload - max_payload % 2
    return [bytes(pcm[i:i + step]) for i in range(0, len(pcm), step)]


@dataclass(frozen=True)
class Message:
    """One checked device line: `TAG key=value ...`. Values stay text; the accessors convert them."""

    tag: str
    fields: dict[str, str] = field(default_factory=dict)

    def get_int(self, key: str, default: int | None = None) -> int:
        """The value as an int. A missing key gives default (KeyError if None); a non-integer raises ValueError."""
        if key not in self.fields:
            if default is None:
                raise KeyError(f"{self.tag} has no {key}")
            return default
        return _to_int(self.fields[key], key)

    def get_list(self, key: str) -> list[str]:
        """A comma-separated value as a list ("" is an empty list)."""
        value = self.fields[key]
        return value.split(",") if value else []

    def get_int_list(self, key: str) -> list[int]:
        return [_to_int(item, key) for item in self.get_list(key)]


def _to_int(text: str, key: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"{key}={text} is not an integer")
    return int(text)


@dataclass(frozen=True)
class Garbage:
    """A line that failed a check: the host counts it and goes on. data is at most LINE_MAX bytes of it."""

    data: bytes
    reason: str  # "too_long", "encoding", "crc" or "parse"


_INT_RE = re.compile(r"-?[0-9]+")
_LINE_RE = re.compile(r"(.*) \*([0-9A-F]{2})", re.DOTALL)
_TAG_RE = re.compile(r"[A-Z]+")
# A value: printable ASCII without space, '*' or '=' (ranges !-) +-< >-~).
_FIELD_RE = re.compile(rf"([a-z0-9_]+)=([!-)+-<>-~]{{0,{VALUE_MAX}}})")


def parse_line(line: bytes) -> Message | Garbage | None:
    """Checks and parses one line without its "\\n". None for an empty line (nothing to count)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None
    if len(line) > LINE_MAX:
        return Garbage(bytes(line[:LINE_MAX]), "too_long")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return Garbage(bytes(line), "encoding")
    match = _LINE_RE.fullmatch(text)
    if match is None:
        return Garbage(bytes(line), "parse")
    body, crc = match.groups()
    if crc8(body.encode("ascii")) != int(crc, 16):
        return Garbage(bytes(line), "crc")
    tag, *tokens = body.split(" ")
    if not _TAG_RE.fullmatch(tag):
        return Garbage(bytes(line), "parse")
    fields: dict[str, str] = {}
    for token in tokens:
        pair = _FIELD_RE.fullmatch(token)
        if pair is None or pair.group(1) in fields:
            return Garbage(bytes(line), "parse")
        fields[pair.group(1)] = pair.group(2)
    return Message(tag, fields)


class LineDecoder:
    """Streaming decoder of device lines: feed it whatever the serial port returned.

    It never raises on any bytes, holds at most LINE_MAX + 2 bytes of an unfinished line (a line longer than that is
    reported as garbage once and skipped up to its "\\n"), and the events do not depend on how the stream was cut
    into chunks.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skipping = False  # inside an over-long line, waiting for its "\n"
        self.messages = 0
        self.garbage = 0

    def feed(self, data: bytes) -> list[Message | Garbage]:
        """Events for every line completed by data, in stream order."""
        data = bytes(data)
        events: list[Message | Garbage] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._hold(data[start:], events)
                break
            if self._skipping:
                self._skipping = False
            else:
                event = parse_line(bytes(self._pending) + data[start:end])
                if event is not None:
                    events.append(event)
            self._pending.clear()
            start = end + 1
        self.messages += sum(isinstance(event, Message) for event in events)
        self.garbage += sum(isinstance(event, Garbage) for event in events)
        return events

    def _hold(self, tail: bytes, events: list[Message | Garbage]) -> None:
        if self._skipping:
            return
        self._pending += tail
        # LINE_MAX bytes and a "\r" can still be a good line; one more byte cannot.
        if len(self._pending) > LINE_MAX + 1:
            events.append(Garbage(bytes(self._pending[:LINE_MAX]), "too_long"))
            self._pending.clear()
            self._skipping = True
