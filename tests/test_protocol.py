"""Property tests of the serial protocol: the Python line decoder on hostile streams, and Python-encoded frames
through the device's C decoder under random corruption."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kws.board import core, protocol
from kws.board.protocol import FrameType, Garbage, LineDecoder, Message, encode_frame, parse_line

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_in_chunks(decoder: LineDecoder | core.FrameDecoder, data: bytes, cuts: list[int]) -> list:
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [event for a, b in zip(bounds, bounds[1:], strict=False) for event in decoder.feed(data[a:b])]


# ---- lines ----

keys = st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True)
values = st.one_of(
    st.integers(-2**31, 2**32 - 1),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
    st.lists(st.integers(0, 255), max_size=12),
    st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=5),
)
lines = st.builds(lambda tag, fields: core.format_line(tag, fields),
                  st.from_regex(r"[A-Z]{1,8}", fullmatch=True), st.dictionaries(keys, values, max_size=6))
# Garbage rich in the bytes that matter to the parser; it is ended by "\n" before each good line.
garbage = st.lists(st.one_of(st.sampled_from(b" *=\r\n,AZaz09"), st.integers(0, 255)), max_size=80).map(bytes)


def messages(events: list) -> list[Message]:
    return [event for event in events if isinstance(event, Message)]


@SETTINGS
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=20))
def test_line_decoder_never_raises_and_ignores_chunking(data: bytes, cuts: list[int]) -> None:
    whole = LineDecoder().feed(data)
    assert feed_in_chunks(LineDecoder(), data, cuts) == whole
    assert all(len(event.data) <= protocol.LINE_MAX for event in whole if isinstance(event, Garbage))


@SETTINGS
@given(st.lists(st.tuples(garbage, lines), min_size=1, max_size=8), st.lists(st.integers(0, 10**6), max_size=30),
       st.integers(0, 700))
def test_every_good_line_after_garbage_is_recovered(items: list[tuple[bytes, bytes]], cuts: list[int],
                                                    long_junk: int) -> None:
    stream = b"x" * long_junk  # an over-long unterminated start must not hide the next line either
    for junk, line in items:
        stream += junk + b"\n" + line
    expected = [parse_line(line[:-1]) for _, line in items]
    # Garbage that happens to be a valid line (CRC and all) would be a message too: count only the good lines.
    assume(not any(isinstance(parse_line(part), Message) for junk, _ in items for part in junk.split(b"\n")))
    events = feed_in_chunks(LineDecoder(), stream, cuts)
    assert messages(events) == expected
    assert events == LineDecoder().feed(stream)


@SETTINGS
@given(st.lists(lines, min_size=1, max_size=10), st.data())
def test_a_corrupted_byte_loses_exactly_its_line(good: list[bytes], data: st.DataObject) -> None:
    stream = bytearray(b"".join(good))
    position = data.draw(st.integers(0, len(stream) - 1).filter(lambda i: stream[i] != 0x0A))
    flip = data.draw(st.integers(1, 255).filter(lambda x: stream[position] ^ x != 0x0A))
    stream[position] ^= flip
    hit = next(i for i, end in enumerate(_ends(good)) if position < end)
    events = LineDecoder().feed(bytes(stream))
    # CRC-8 catches every error within 8 bits: the damaged line is garbage, every other one comes through.
    assert messages(events) == [parse_line(line[:-1]) for i, line in enumerate(good) if i != hit]
    assert sum(isinstance(event, Garbage) for event in events) == 1


def _ends(chunks: list[bytes]) -> list[int]:
    ends, total = [], 0
    for chunk in chunks:
        total += len(chunk)
        ends.append(total)
    return ends


# ---- frames: Python encoder, C decoder ----

payload_for = {
    FrameType.HELLO: st.binary(min_size=1, max_size=1),
    FrameType.AUDIO: st.integers(0, 512).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n)),
    FrameType.CLIP_BEGIN: st.binary(min_size=4, max_size=4),
    FrameType.CLIP_END: st.binary(min_size=4, max_size=4),
    FrameType.BYE: st.just(b""),
}
frames = st.sampled_from(list(FrameType)).flatmap(
    lambda t: st.tuples(st.just(int(t)), st.integers(0, 0xFFFF), payload_for[t]))
sync_rich = st.lists(st.one_of(st.sampled_from([0xA5, 0x5A, 0x01, 0x02, 0x00, 0x04]), st.integers(0, 255)),
                     max_size=40).map(bytes)


@SETTINGS
@given(st.lists(st.tuples(sync_rich, frames), min_size=1, max_size=6), st.data())
def test_c_decoder_recovers_intact_frames_and_accepts_nothing_unsent(items: list, data: st.DataObject) -> None:
    stream, spans = bytearray(), []
    for junk, (frame_type, seq, payload) in items:
        stream += junk
        encoded = encode_frame(frame_type, seq, payload)
        spans.append((len(stream), len(stream) + len(encoded)))
        stream += encoded
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(1, 255)), max_size=4))
    for position, bits in flips:
        stream[position] ^= bits
    # A header damaged into a longer length waits for that many bytes before its CRC fails: provide them.
    stream += bytes(protocol.FRAME_MAX_PAYLOAD + 9)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    events = feed_in_chunks(core.FrameDecoder(check_payload=False), bytes(stream), cuts)

    decoded = [(e.type, e.seq, e.payload) for e in events if isinstance(e, core.Frame)]
    for frame in decoded:  # every accepted frame is really in the stream, CRC and all
        assert encode_frame(*frame) in stream
    hit = {i for i, (a, b) in enumerate(spans) for position, _ in flips if a <= position < b}
    intact = [frame for i, (_, frame) in enumerate(items) if i not in hit]
    remaining = iter(decoded)
    assert all(frame in remaining for frame in intact)  # in order, none lost
    if not flips:
        assert decoded == [frame for _, frame in items]


def test_python_protocol_constants_match_the_firmware_header():
    from kws.board import firmware, protocol

    header = "lib/kws_core/kws_protocol.h"
    assert protocol.PROTOCOL_VERSION == firmware.constant(header, "KWS_PROTOCOL_VERSION")
    assert protocol.FRAME_SYNC == bytes([firmware.constant(header, "KWS_FRAME_SYNC0"),
                                         firmware.constant(header, "KWS_FRAME_SYNC1")])
    assert protocol.FRAME_MAX_PAYLOAD == firmware.constant(header, "KWS_FRAME_MAX_PAYLOAD")
    # The C limit counts the line's "\n", the Python one does not.
    assert protocol.LINE_MAX == firmware.constant(header, "KWS_LINE_MAX")
    assert protocol.VALUE_MAX == firmware.constant(header, "KWS_LINE_MAX_VALUE")
