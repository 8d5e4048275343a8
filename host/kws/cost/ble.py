"""What Bluetooth LE adds to the board's power, and to a detection's latency: an estimate from the radio's datasheet
currents (config [board]) and the time each packet spends on air. Nothing here was measured (docs/energy.md).

The radio draws `radio_tx_ma` while it transmits and `radio_rx_ma` while it listens, each time after a ramp-up of
`radio_ramp_up_us`; on the LE 1M PHY a byte takes 8 µs on air. Every event is counted as radio time only:

- no crystal start-up per event: the HFXO already runs for the PDM microphone (the Arduino PDM library starts it
  and never stops it) and for mbed's Cordio link layer, whose timer runs from the HF clock;
- no CPU wake-up per event: loop() never sleeps (the mbed core calls it back to back), so the link layer's
  interrupts take CPU time that was being spent anyway.

What the firmware sends (kws_ble.h, docs/ble.md), per the Bluetooth Core Specification v5.x (Vol 6 Part B for the
link layer, Vol 3 Part A/F for L2CAP and ATT):

- advertising, unconnected: an ADV_IND on each of the 3 channels, each followed by a short listen for a scan or
  connect request, every advertising interval plus advDelay (0-10 ms random, 5 ms on average). A scan response
  goes out only when an active scanner asks for it: counted per request, not in the average;
- connected, idle: one exchange of empty packets per connection event (the central's, then ours);
- a detection: its notification replaces our empty packet in the next connection event;
- the stats value, read by the host every few seconds: a Read Request then Read Blob Requests, each answered in
  a later event of the same connection, at the default ATT MTU of 23 (kws monitor --ble does not ask for more; ArduinoBLE would grant up to 247).
"""

from __future__ import annotations

from dataclasses import dataclass

from kws.config_schema import Board

BYTE_US = 8.0  # LE 1M PHY: 1 Mbit/s
PACKET_BYTES = 1 + 4 + 2 + 3  # preamble, access address, PDU header, CRC around every payload
ACCESS_US = (1 + 4) * BYTE_US  # preamble and access address: what a receiver needs to know a packet is for it
LL_PAYLOAD_MAX = 27  # a data PDU's payload without data length extension
ADVERTISING_CHANNELS = 3
ADV_DELAY_MEAN_MS = 5.0  # advDelay, uniform 0-10 ms, added to every advertising interval
ADDRESS_BYTES = 6  # AdvA, ScanA
L2CAP_HEADER = 4
ATT_NOTIFICATION_HEADER = 3  # opcode, handle
ATT_READ_REQUEST = 3  # opcode, handle
ATT_READ_BLOB_REQUEST = 5  # opcode, handle, offset
ATT_READ_RESPONSE_HEADER = 1  # opcode
DEFAULT_ATT_MTU = 23
# How long the advertiser listens after each ADV_IND when nobody asks: a request's preamble and access address,
# with the T_IFS tolerance on each side (mbed's Cordio port allows 2 + 1 us). An assumption: the stack's real
# receive timeout is not documented.
ADVERTISING_LISTEN_US = ACCESS_US + 2 * 3.0
# Sleep clock accuracy of both ends, for the receive window's widening before each connection event: the
# central's, assumed 50 ppm, and ours as Cordio's nRF5x port declares it (20 ppm).
CLOCK_PPM = 50 + 20


def on_air_us(payload_bytes: int) -> float:
    """A packet's time on air, for a PDU payload of that many bytes."""
    return (PACKET_BYTES + payload_bytes) * BYTE_US


def radio_uj(board: Board, tx_us: float, rx_us: float) -> float:
    """Energy of the radio transmitting and receiving that long (µJ)."""
    return board.voltage * (board.radio_tx_ma * tx_us + board.radio_rx_ma * rx_us) / 1000


def sent_instead_of_empty_us(board: Board, l2cap_bytes: int) -> tuple[float, float]:
    """(TX, RX) µs that sending an L2CAP frame adds to connection events that happen anyway: its bytes in place of
    an empty packet's, and for each further data PDU it needs (27 bytes each) one more exchange in the event."""
    extra_pdus = -(-l2cap_bytes // LL_PAYLOAD_MAX) - 1
    tx_us = l2cap_bytes * BYTE_US + extra_pdus * (board.radio_ramp_up_us + on_air_us(0))
    rx_us = extra_pdus * (board.radio_ramp_up_us + on_air_us(0))  # the central's acknowledging empty packet
    return tx_us, rx_us


def read_pieces(value_bytes: int, att_mtu: int) -> list[int]:
    """The bytes each response of a long read carries: MTU - 1 at most, and a shorter one ends the read, so a
    value that fills its last piece exactly takes one more (empty) response. Requests: a Read, then Read Blobs."""
    piece = att_mtu - 1
    return [min(piece, value_bytes - offset) for offset in range(0, value_bytes + 1, piece)]


@dataclass(frozen=True)
class BleCost:
    advertising_event_uj: float  # one advertising event: 3 channels
    advertising_mw: float  # average while advertising, unconnected, no scanner asking
    scan_response_uj: float  # each scan request answered (only when an active scanner asks)
    connection_interval_ms: float
    connection_event_uj: float  # one connection event with nothing to say: an exchange of empty packets
    stats_read_uj: float  # one read of the stats value, beyond the empty exchanges it rides in
    connected_idle_mw: float  # average while connected with no detection: empty exchanges and the stats reads
    notification_uj: float  # each detection's notification, beyond the empty exchange it replaces
    latency_mean_ms: float  # what waiting for the next connection event adds to a detection
    latency_worst_ms: float


def ble_cost(board: Board, advertising_interval_ms: float, connection_interval_ms: float, name_bytes: int,
             detection_bytes: int, stats_bytes: int, stats_every_s: float,
             att_mtu: int = DEFAULT_ATT_MTU) -> BleCost:
    """The radio's share of the power for one advertising and connection schedule (see the module docstring)."""
    ramp_us = board.radio_ramp_up_us

    # Advertising: flags (3 bytes) and the 128-bit service UUID (18) in the ADV_IND, the name in the scan response.
    adv_data, scan_response_data = 3 + 2 + 16, 2 + name_bytes
    event_uj = ADVERTISING_CHANNELS * radio_uj(board, tx_us=ramp_us + on_air_us(ADDRESS_BYTES + adv_data),
                                               rx_us=ramp_us + ADVERTISING_LISTEN_US)
    advertising_mw = event_uj / (advertising_interval_ms + ADV_DELAY_MEAN_MS)  # µJ per ms = mW
    scan_response_uj = radio_uj(board, tx_us=ramp_us + on_air_us(ADDRESS_BYTES + scan_response_data),
                                rx_us=on_air_us(2 * ADDRESS_BYTES) - ACCESS_US)  # the rest of the SCAN_REQ

    # Connected: at each event we listen from the widened window's start for the central's empty packet, then
    # answer with ours after T_IFS.
    widening_us = CLOCK_PPM * 1e-6 * connection_interval_ms * 1000
    empty_event_uj = radio_uj(board, tx_us=ramp_us + on_air_us(0), rx_us=ramp_us + widening_us + on_air_us(0))
    tx_us, rx_us = sent_instead_of_empty_us(board, L2CAP_HEADER + ATT_NOTIFICATION_HEADER + detection_bytes)
    notification_uj = radio_uj(board, tx_us, rx_us)

    # The stats value, read in pieces; each request rides in one of the central's packets.
    stats_tx_us = stats_rx_us = 0.0
    for index, size in enumerate(read_pieces(stats_bytes, att_mtu)):
        request = ATT_READ_REQUEST if index == 0 else ATT_READ_BLOB_REQUEST
        stats_rx_us += (L2CAP_HEADER + request) * BYTE_US
        tx_us, rx_us = sent_instead_of_empty_us(board, L2CAP_HEADER + ATT_READ_RESPONSE_HEADER + size)
        stats_tx_us, stats_rx_us = stats_tx_us + tx_us, stats_rx_us + rx_us
    stats_uj = radio_uj(board, stats_tx_us, stats_rx_us)
    connected_idle_mw = empty_event_uj / connection_interval_ms + stats_uj / (stats_every_s * 1000)

    # A notification waits for the next connection event (peripheral latency 0): uniformly 0..interval.
    return BleCost(event_uj, advertising_mw, scan_response_uj, connection_interval_ms, empty_event_uj, stats_uj,
                   connected_idle_mw, notification_uj,
                   latency_mean_ms=connection_interval_ms / 2, latency_worst_ms=connection_interval_ms)


def shipped_schedule(board: Board, model_id: str) -> dict:
    """The estimate for the firmware's own schedule and sizes, as kws_ble.h defines them (through the host's build
    of kws_core), at both ends of the connection interval the board asks for; the central picks within them."""
    from kws.board import core
    from kws.board.firmware import stats_interval_s

    ids = core.ble_ids()
    stats_every_s = stats_interval_s()  # the host reads the stats value as often as the board updates it
    costs = [ble_cost(board, ids.advertising_interval_ms, interval,
                      name_bytes=len((ids.name_prefix + model_id).encode()),
                      detection_bytes=ids.detection_size, stats_bytes=ids.stats_size, stats_every_s=stats_every_s)
             for interval in (ids.connection_interval_min_ms, ids.connection_interval_max_ms)]
    fastest, slowest = costs
    return {
        "source": "estimate from nRF52840 datasheet figures ([board] radio_*), not measured",
        "advertising_interval_ms": ids.advertising_interval_ms,
        "advertising_mw": round(fastest.advertising_mw, 3),
        "scan_response_uj": round(fastest.scan_response_uj, 2),
        "connection_interval_ms": [ids.connection_interval_min_ms, ids.connection_interval_max_ms],
        "connected_idle_mw": [round(fastest.connected_idle_mw, 3), round(slowest.connected_idle_mw, 3)],
        "stats_every_s": stats_every_s,
        "notification_uj": round(fastest.notification_uj, 2),
        "latency_mean_ms": [fastest.latency_mean_ms, slowest.latency_mean_ms],
        "latency_worst_ms": [fastest.latency_worst_ms, slowest.latency_worst_ms],
    }
