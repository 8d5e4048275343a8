"""kws.cost.ble: the Bluetooth LE energy and latency estimate against hand arithmetic, its scaling with the radio
schedule, a simulation of the connection-event wait, and the schedule read from kws_ble.h."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kws import config as config_module
from kws.board import core
from kws.board.firmware import constant
from kws.config_schema import Board
from kws.cost import ble

BOARD = Board()
# The firmware's values (kws_ble.h): a 19-byte detection, a 54-byte stats value, "nano-kws 46b4fb6c" (17 bytes).
SIZES = {"name_bytes": 17, "detection_bytes": 19, "stats_bytes": 54, "stats_every_s": 5.0}


def cost(advertising_ms=100.0, connection_ms=50.0, board=BOARD, **changes):
    return ble.ble_cost(board, advertising_ms, connection_ms, **{**SIZES, **changes})


def uj(tx_us, rx_us, board=BOARD):
    return board.voltage * (board.radio_tx_ma * tx_us + board.radio_rx_ma * rx_us) / 1000


def test_an_advertising_event_by_hand():
    # Each channel: ramp-up, then the ADV_IND (10 bytes of framing, AdvA 6, flags 3 + UUID 18) at 8 µs a byte;
    # ramp-up again and a listen for a request's preamble and access address (40 µs) plus 3 µs each side.
    channel = uj(tx_us=40 + (10 + 6 + 21) * 8, rx_us=40 + 46)
    assert cost().advertising_event_uj == pytest.approx(3 * channel)
    # A scan response (19 bytes of name AD) after the rest of the 22-byte SCAN_REQ.
    assert cost().scan_response_uj == pytest.approx(uj(tx_us=40 + (10 + 6 + 19) * 8, rx_us=22 * 8 - 40))


def test_advertising_power_scales_with_one_over_the_mean_event_period():
    # advDelay adds 5 ms to every interval on average, so the period, not the interval, divides the event's energy.
    for interval in (20.0, 100.0, 1000.0):
        assert cost(interval).advertising_mw * (interval + 5) == pytest.approx(cost().advertising_event_uj)
    assert cost(200.0).advertising_mw == pytest.approx(cost(100.0).advertising_mw * 105 / 205)


def test_a_connection_event_by_hand_and_the_idle_power_it_makes():
    # Listen from the widened window (70 ppm of 100 ms = 7 µs early) for the central's 10-byte empty packet, answer
    # with ours; ramp-up before each.
    event = uj(tx_us=40 + 80, rx_us=40 + 7 + 80)
    slow = cost(connection_ms=100.0)
    assert slow.connection_event_uj == pytest.approx(event)
    assert slow.connected_idle_mw == pytest.approx(event / 100 + slow.stats_read_uj / 5000)
    # Halving the interval nearly doubles the idle power (the stats reads stay, the windows narrow a little).
    fast = cost(connection_ms=50.0)
    assert 1.9 < fast.connected_idle_mw / slow.connected_idle_mw < 2.0


def test_a_notification_costs_its_bytes_on_top_of_the_empty_exchange():
    # 19 value bytes + 3 ATT + 4 L2CAP replace nothing in our empty packet: 26 more bytes transmitted, no more RX.
    extra = cost().notification_uj
    assert extra == pytest.approx(uj(tx_us=26 * 8, rx_us=0))
    assert cost().connection_event_uj + extra > cost().connection_event_uj
    assert cost(detection_bytes=20).notification_uj > extra
    # A value beyond one 27-byte data PDU needs a second exchange in the same event: its framing, ramp-ups and the
    # central's empty packet.
    split = cost(detection_bytes=21).notification_uj
    assert split == pytest.approx(uj(tx_us=28 * 8 + 40 + 80, rx_us=40 + 80))


def test_the_stats_value_takes_a_read_and_two_blob_reads_at_the_default_mtu():
    assert ble.read_pieces(54, 23) == [22, 22, 10]
    assert ble.read_pieces(54, 247) == [54]
    assert ble.read_pieces(44, 23) == [22, 22, 0]  # a full last piece: one more request to learn the value ended
    # Requests (L2CAP 4 + Read 3, then Read Blob 5 twice) received, responses (L2CAP 4 + opcode + piece) sent.
    rx_bytes = (4 + 3) + 2 * (4 + 5)
    tx_bytes = (4 + 1 + 22) * 2 + (4 + 1 + 10)
    assert cost().stats_read_uj == pytest.approx(uj(tx_us=tx_bytes * 8, rx_us=rx_bytes * 8))


def test_energy_follows_the_board_currents_and_voltage():
    dcdc = dataclasses.replace(BOARD, radio_tx_ma=6.40, radio_rx_ma=6.26)
    assert cost(board=dcdc).notification_uj == pytest.approx(cost().notification_uj * 6.40 / 10.8)
    lower = dataclasses.replace(BOARD, voltage=BOARD.voltage / 2)
    assert cost(board=lower).advertising_mw == pytest.approx(cost().advertising_mw / 2)
    slow_ramp = dataclasses.replace(BOARD, radio_ramp_up_us=140.0)
    assert cost(board=slow_ramp).connection_event_uj > cost().connection_event_uj


@pytest.mark.parametrize("interval_ms", [30.0, 50.0, 100.0])
def test_latency_bounds_match_a_simulated_wait_for_the_next_connection_event(interval_ms):
    # Detections at random times; each notification goes out at the next connection event (peripheral latency 0).
    detections = np.random.default_rng(0).uniform(0, 1000 * interval_ms, 100_000)
    wait = np.ceil(detections / interval_ms) * interval_ms - detections
    estimate = cost(connection_ms=interval_ms)
    assert estimate.latency_worst_ms == interval_ms and wait.max() <= interval_ms
    assert wait.mean() == pytest.approx(estimate.latency_mean_ms, rel=0.01)


def test_the_shipped_schedule_is_the_one_kws_ble_h_defines():
    ids = core.ble_ids()
    header = "lib/kws_core/kws_ble.h"
    assert ids.advertising_interval_ms == constant(header, "KWS_BLE_ADVERTISING_INTERVAL_MS")
    assert ids.connection_interval_min_ms == constant(header, "KWS_BLE_CONNECTION_INTERVAL_MIN_MS")
    assert ids.connection_interval_max_ms == constant(header, "KWS_BLE_CONNECTION_INTERVAL_MAX_MS")
    shipped = ble.shipped_schedule(BOARD, "46b4fb6c")
    assert shipped["advertising_interval_ms"] == ids.advertising_interval_ms
    assert shipped["connection_interval_ms"] == [ids.connection_interval_min_ms, ids.connection_interval_max_ms]
    assert shipped["latency_worst_ms"] == shipped["connection_interval_ms"]
    assert shipped["latency_mean_ms"] == [interval / 2 for interval in shipped["connection_interval_ms"]]
    fast = ble.ble_cost(BOARD, ids.advertising_interval_ms, ids.connection_interval_min_ms,
                        name_bytes=len(ids.name_prefix) + 8, detection_bytes=constant(header, "KWS_BLE_DETECTION_SIZE"),
                        stats_bytes=constant(header, "KWS_BLE_STATS_SIZE"), stats_every_s=5.0)
    assert shipped["advertising_mw"] == round(fast.advertising_mw, 3)
    assert shipped["notification_uj"] == round(fast.notification_uj, 2)
    assert shipped["connected_idle_mw"][0] == round(fast.connected_idle_mw, 3)
    assert shipped["connected_idle_mw"][0] > shipped["connected_idle_mw"][1]  # the shorter interval costs more


def test_board_radio_keys_load_and_a_misspelt_one_is_refused():
    board = config_module.from_dict({"board": {"radio_tx_ma": 6.4, "radio_rx_ma": 6, "radio_ramp_up_us": 140}}).board
    assert (board.radio_tx_ma, board.radio_rx_ma, board.radio_ramp_up_us) == (6.4, 6.0, 140.0)
    with pytest.raises(config_module.ConfigError, match="unknown key 'board.radio_tx_mA'"):
        config_module.from_dict({"board": {"radio_tx_mA": 6.4}})
    with pytest.raises(config_module.ConfigError, match="board.radio_rx_ma"):
        config_module.from_dict({"board": {"radio_rx_ma": -1.0}})
