"""`kws sim --ble`: the virtual board's Bluetooth LE peripheral on a virtual radio (docs/ble.md).

The board's GATT service is served by Google's bumble stack on a virtual controller. A second virtual controller on
the same in-process link is the host's adapter: it speaks HCI on a transport that host tools open (`kws monitor
--ble --hci tcp-client:127.0.0.1:PORT`), so advertising, scanning, connection, service discovery, long reads,
notifications and disconnects all cross bumble's link layer, not a shortcut. The values are the board's own C
(kws_ble through `kws.board.core`): the same encoding, sequence numbers and drop counters as the firmware.

Like the firmware on ArduinoBLE: an ATT MTU of up to 247 when the central asks (ArduinoBLE grants the controller's
256-byte buffers less the 9-byte ACL header; a central that does not ask keeps 23, and `kws monitor --ble` does not
ask, so the info and stats arrive by long reads as from the most frugal central), a detection is notified only when a central subscribed and is otherwise dropped and
counted, and advertising resumes after a disconnect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Device, DeviceConfiguration
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

from kws.board import core

BOARD_ADDRESS = "F0:4B:57:53:00:01"  # a static random address (top bits 11)
ARDUINOBLE_MAX_ATT_MTU = 247  # HCI.cpp readLeBufferSize: ATT.setMaxMtu(pktLen - 9), pktLen 256 on the nRF52840
_START_TIMEOUT_S = 10.0


class BleStartError(RuntimeError):
    """The virtual radio could not start (the HCI transport's address is in use, or malformed)."""


class BlePeripheral:
    """The GATT service on a virtual controller, run by its own asyncio thread; other threads call `detection`,
    `set_info`, `set_stats` and `drop`, as the firmware's loop calls its ble_link."""

    def __init__(self, model_id: str, hci: str) -> None:
        self.ids = core.ble_ids()
        self.name = self.ids.name_prefix + model_id
        self.hci = hci
        self.counters = core.BleCounters()  # used on the radio thread only
        self._info = b""
        # Until the first STATS period ends, as the firmware: zero counters.
        self._last_stats: dict = {**dict.fromkeys(core.BLE_STATS_KEYS, 0), "mode": "mic"}
        self._stats = b""
        self._subscribed: set[object] = set()  # bearers with notifications on
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="virtual-radio", daemon=True)
        self._transport = None
        self.device: Device | None = None
        self._detection: Characteristic | None = None

    # ---- life cycle (any thread) ----

    def start(self) -> None:
        self._thread.start()
        try:
            self._run(self._start())
        except Exception as error:
            self.stop()
            raise BleStartError(f"virtual radio on {self.hci}: {error}") from error

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self._run(self._stop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)

    def _run(self, coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT_S)

    # ---- what the board's loop calls (any thread) ----

    def detection(self, label_index: int, score: int, t_ms: int, fe_us: int, inf_us: int, step_us: int) -> None:
        """A DET: notified if a central subscribed, else dropped and counted; never waits for the radio."""
        self._loop.call_soon_threadsafe(self._notify, label_index, score, t_ms, fe_us, inf_us, step_us)

    def set_info(self, hello_fields: Mapping[str, object]) -> None:
        """The info characteristic: the HELLO line itself."""
        line = core.format_line("HELLO", hello_fields)
        self._loop.call_soon_threadsafe(setattr, self, "_info", line.rstrip(b"\n"))

    def set_stats(self, stats_fields: Mapping[str, object]) -> None:
        """The stats characteristic: the STATS line's figures and the radio's counters."""
        self._loop.call_soon_threadsafe(self._update_stats, dict(stats_fields))

    def drop(self) -> None:
        """Drops the connection from the board's side, as a radio link that fades out does."""
        self._run(self._drop())

    # ---- the radio thread ----

    async def _start(self) -> None:
        link = LocalLink()
        self._transport = await open_transport(self.hci)
        # The host's adapter: what `kws monitor --ble --hci ...` drives.
        Controller("host adapter", host_source=self._transport.source, host_sink=self._transport.sink, link=link)
        board = Controller("board", link=link)
        # The name through the configuration: the GAP service (device name 0x2A00) is built from it
        self.device = device = Device(config=DeviceConfiguration(name=self.name), address=Address(BOARD_ADDRESS),
                                      host=Host(board, AsyncPipeSink(board)))
        device.gatt_server.max_mtu = ARDUINOBLE_MAX_ATT_MTU
        detection = Characteristic(self.ids.detection, Characteristic.Properties.NOTIFY,
                                   Characteristic.Permissions.READABLE, b"")
        detection.on(detection.EVENT_SUBSCRIPTION, self._on_subscription)
        self._detection = detection
        device.add_service(Service(self.ids.service, [
            detection,
            Characteristic(self.ids.info, Characteristic.Properties.READ, Characteristic.Permissions.READABLE,
                           CharacteristicValue(read=lambda _connection: self._info)),
            Characteristic(self.ids.stats, Characteristic.Properties.READ, Characteristic.Permissions.READABLE,
                           CharacteristicValue(read=lambda _connection: self._stats)),
        ]))
        device.on(device.EVENT_CONNECTION, self._on_connection)
        await device.power_on()
        self._update_stats(self._last_stats)
        interval = self.ids.advertising_interval_ms
        advertising = AdvertisingData([
            (AdvertisingData.FLAGS, bytes([AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG
                                           | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG])),
            (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, UUID(self.ids.service).to_bytes()),
        ])
        scan_response = AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())])
        await device.start_advertising(auto_restart=True, advertising_data=bytes(advertising),
                                       scan_response_data=bytes(scan_response),
                                       advertising_interval_min=interval, advertising_interval_max=interval)

    async def _stop(self) -> None:
        if self.device is not None:
            for connection in list(self.device.connections.values()):
                await connection.disconnect()
            await self.device.power_off()
        if self._transport is not None:
            await self._transport.close()

    def _on_connection(self, connection: object) -> None:
        self.counters.connected()
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._subscribed.clear())

    def _on_subscription(self, bearer: object, notify: bool, _indicate: bool) -> None:
        (self._subscribed.add if notify else self._subscribed.discard)(bearer)

    def _notify(self, label_index: int, score: int, t_ms: int, fe_us: int, inf_us: int, step_us: int) -> None:
        value = self.counters.next_detection(label_index, score, t_ms, fe_us, inf_us, step_us)
        self.counters.count_sent(bool(self._subscribed))
        if self._subscribed:
            sending = self._loop.create_task(self.device.notify_subscribers(self._detection, value))
            # handed to the stack, as ArduinoBLE's writeValue: a link that dies meanwhile loses it (a gap)
            sending.add_done_callback(lambda task: task.cancelled() or task.exception())

    def _update_stats(self, fields: dict) -> None:
        self._last_stats = fields
        self._stats = core.encode_ble_stats({**fields, **self.counters.fields()})

    async def _drop(self) -> None:
        for connection in list(self.device.connections.values()):
            await connection.disconnect()
