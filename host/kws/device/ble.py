"""A board's detections over Bluetooth LE (docs/ble.md), as the same events the serial link gives.

`BleLink` finds the board by its advertised service (and a name or address if given), connects, reads the info
characteristic (the HELLO line itself), subscribes to detections and reads the stats every 5 s. Each notification
is decoded by the board's own C (`kws.board.core`) into the `Message` a serial DET line would have parsed to, so
`kws monitor` prints and logs the same lines whichever way they came. Malformed values are counted as garbage,
gaps in the detections' sequence numbers are reported, and a dropped connection is reconnected.

Two ways to a radio, behind one small interface (`_Central`, `_Gatt`):
- bleak (the default): the operating system's Bluetooth stack (BlueZ over D-Bus, CoreBluetooth, WinRT);
- bumble (`--hci TRANSPORT`): a Bluetooth host stack in Python driving an HCI transport: `kws sim --ble`'s
  virtual adapter (`tcp-client:127.0.0.1:PORT`), a USB dongle (`usb:0`) or a Linux HCI socket (`hci-socket:0`).

Both libraries are imported only when a BLE link opens, so `kws monitor --help` stays instant.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from kws.board import core
from kws.board.firmware import stats_interval_s
from kws.board.protocol import PROTOCOL_VERSION, Garbage, Message, parse_line
from kws.device.link import DeviceError, ProtocolMismatch, next_queued_event

SCAN_TIMEOUT_S = 10.0  # per attempt to find the board
RECONNECT_TIMEOUT_S = 60.0  # a board that stays gone this long after a drop ends the link
STATS_INTERVAL_S = stats_interval_s()  # how often the board updates its stats value
GAP_DEVICE_NAME_UUID = "00002a00-0000-1000-8000-00805f9b34fb"


class BleError(DeviceError):
    """No adapter, no permission, no such board, or a board that is not a nano-kws peripheral."""


class _Disconnected(Exception):
    """The link dropped (a read or subscription failed because of it, or the central said so)."""


class _Gatt(Protocol):
    """One connection to the board, as much of GATT as the link needs."""

    disconnected: asyncio.Event

    async def read(self, uuid: str) -> bytes: ...
    async def subscribe(self, uuid: str, callback: Callable[[bytes], None]) -> None: ...
    async def close(self) -> None: ...


class _Central(Protocol):
    async def find(self, target: str | None, service: str, timeout: float,
                   skip: set[str]) -> tuple[str, str | None] | None: ...
    async def connect(self, address: str, service: str) -> _Gatt: ...
    async def close(self) -> None: ...


def _matches(target: str | None, name: str | None, address: str) -> bool | None:
    """No target: any board advertising the service; else its address, or its name whole or without the prefix.
    None when only the name could tell and it was not seen (it travels in the scan response, which a passive scan
    or bumble's virtual controller does not deliver): the GAP device name read after connecting decides then."""
    if not target or target.upper() == address.upper():
        return True
    if name is None:
        return None
    return name in (target, core.ble_ids().name_prefix + target)


def _describe(target: str | None) -> str:
    return f"'{target}'" if target else "any nano-kws board"


class BleLink:
    """An open Bluetooth LE link: `next_event()` gives HELLO, DET and STATS messages in order, like `Connection`."""

    def __init__(self, target: str | None = None, hci: str | None = None,
                 notice: Callable[[str], None] | None = None, scan_timeout_s: float = SCAN_TIMEOUT_S,
                 reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
                 stats_interval_s: float = STATS_INTERVAL_S) -> None:
        self.target, self.hci = target, hci
        self.scan_timeout_s, self.reconnect_timeout_s = scan_timeout_s, reconnect_timeout_s
        self.stats_interval_s = stats_interval_s
        self._notice = notice or (lambda text: print(text, file=sys.stderr, flush=True))
        self._events: queue.Queue[Message | Garbage | DeviceError] = queue.Queue()
        self.ids = core.ble_ids()
        self.port = f"BLE {_describe(target)}" + (f" via {hci}" if hci else "")
        self.garbage = 0  # values the decoders rejected
        self.reconnects = 0
        self.sequence = core.BleSequence()  # gaps: detections the board numbered that never arrived
        self._labels: list[str] = []
        self._est_m4_us: str | None = None
        self._loop = asyncio.new_event_loop()
        self._closing: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),),
                                        name=f"ble {target or ''}", daemon=True)
        self._thread.start()

    # ---- the caller's side ----

    def next_event(self, timeout: float | None = None) -> Message | Garbage | None:
        """The next event, waiting up to timeout seconds (None if none came). Raises the link's errors."""
        return next_queued_event(self._events, timeout)

    def close(self) -> None:
        if self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> BleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the link's thread ----

    async def _main(self) -> None:
        self._closing = asyncio.Event()
        central: _Central | None = None
        try:
            central = await (_BumbleCentral.open(self.hci) if self.hci else _BleakCentral.open())
            # close() must not wait for a scan or a read to end
            work = asyncio.ensure_future(self._keep_connected(central))
            closing = asyncio.ensure_future(self._closing.wait())
            await asyncio.wait([work, closing], return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
            else:
                work.result()
        except DeviceError as error:
            self._events.put(error)
        except Exception as error:  # noqa: BLE001 - anything else from a stack still reaches the caller, named
            self._events.put(BleError(f"{self.port}: {type(error).__name__}: {error}"))
        finally:
            if central is not None:
                await central.close()

    async def _keep_connected(self, central: _Central) -> None:
        connected_once, lost_at = False, time.monotonic()
        others: set[str] = set()  # boards whose GAP name turned out not to be the target
        while not self._closing.is_set():
            found = await central.find(self.target, self.ids.service, self.scan_timeout_s, others)
            if found is None:
                if not connected_once:
                    raise BleError(f"{_describe(self.target)} not found: nothing advertising the nano-kws service "
                                   f"({self.ids.service}) within {self.scan_timeout_s:.0f} s. Is the board on and "
                                   "running a firmware built with KWS_BLE (pio run -e nano33ble_ble), and not "
                                   "connected to another central?")
                if time.monotonic() - lost_at > self.reconnect_timeout_s:
                    raise BleError(f"{self.port}: disconnected and not back within {self.reconnect_timeout_s:.0f} s")
                continue
            address, name = found
            try:
                gatt = await central.connect(address, self.ids.service)
            except _Disconnected as error:
                self._notice(f"{name or address}: connection failed ({error}), retrying")
                continue
            try:
                if name is None:
                    name = (await gatt.read(GAP_DEVICE_NAME_UUID)).decode("utf-8", "replace")
                    if not _matches(self.target, name, address):
                        others.add(address)
                        continue
                if connected_once:
                    self.reconnects += 1
                    self._notice(f"{name} ({address}): reconnected")
                connected_once = True
                await self._serve(gatt, f"{name} ({address})")
            except _Disconnected as error:
                if self._closing.is_set():
                    break
                self._notice(f"{name or address}: disconnected ({error}), reconnecting")
                lost_at = time.monotonic()
            finally:
                await gatt.close()

    async def _serve(self, gatt: _Gatt, who: str) -> None:
        """One connection: info, then detections as they come and stats every stats_interval_s."""
        hello = parse_line(await gatt.read(self.ids.info))
        if not isinstance(hello, Message) or hello.tag != "HELLO":
            raise BleError(f"{who}: the info characteristic holds no HELLO line ({hello}): not a nano-kws board?")
        if hello.fields.get("proto") != str(PROTOCOL_VERSION):
            raise ProtocolMismatch(f"{who}: the board speaks protocol version {hello.fields.get('proto')}, these "
                                   f"host tools speak version {PROTOCOL_VERSION}: update the firmware or the host "
                                   "tools")
        self._labels = hello.get_list("labels")
        self._est_m4_us = hello.fields.get("est_m4_us")  # the virtual board's M4 estimate, as its serial DETs
        self._events.put(hello)
        await gatt.subscribe(self.ids.detection, self._on_detection)
        while not self._closing.is_set():
            closing = asyncio.ensure_future(self._closing.wait())
            dropped = asyncio.ensure_future(gatt.disconnected.wait())
            done, _ = await asyncio.wait([closing, dropped], timeout=self.stats_interval_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            dropped.cancel()
            if gatt.disconnected.is_set():
                raise _Disconnected("link lost")
            if not done:
                self._on_stats(await gatt.read(self.ids.stats))

    def _on_detection(self, value: bytes) -> None:
        try:
            detection = core.decode_ble_detection(value, len(self._labels))
        except core.BleValueError as error:
            self.garbage += 1
            self._events.put(Garbage(bytes(value), f"ble_{error.kind}"))
            return
        skipped = self.sequence.note(detection.seq)
        if skipped:
            self._notice(f"{skipped} detection(s) before seq {detection.seq} never arrived (the board drops "
                         "a detection while no central listens or its radio has no buffer free)")
        fields = {"t_ms": detection.t_ms, "label": self._labels[detection.label_index],
                  "idx": detection.label_index, "score": detection.score, "fe_us": detection.fe_us,
                  "inf_us": detection.inf_us, "step_us": detection.step_us, "seq": detection.seq}
        if self._est_m4_us is not None:
            fields["est_m4_us"] = self._est_m4_us
        self._events.put(Message("DET", {key: str(value) for key, value in fields.items()}))

    def _on_stats(self, value: bytes) -> None:
        try:
            fields = core.decode_ble_stats(value)
        except core.BleValueError as error:
            self.garbage += 1
            self._events.put(Garbage(bytes(value), f"ble_{error.kind}"))
            return
        self._events.put(Message("STATS", {key: str(value) for key, value in fields.items()}))


# ---- bumble: a host stack in Python over an HCI transport ----

class _BumbleGatt:
    def __init__(self, connection: object, peer: object) -> None:
        self.connection, self.peer = connection, peer
        self.disconnected = asyncio.Event()
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self.disconnected.set())

    def _characteristic(self, uuid: str) -> object:
        from bumble.core import UUID

        found = self.peer.get_characteristics_by_uuid(UUID(uuid))
        if not found:
            raise BleError(f"the board's service has no characteristic {uuid}: firmware and host tools differ")
        return found[0]

    async def read(self, uuid: str) -> bytes:
        try:
            return bytes(await self._characteristic(uuid).read_value())
        except (TimeoutError, ConnectionError) as error:
            raise _Disconnected(str(error) or type(error).__name__) from error
        except Exception as error:
            if self.disconnected.is_set():
                raise _Disconnected("link lost during a read") from error
            raise

    async def subscribe(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        await self._characteristic(uuid).subscribe(callback)

    async def close(self) -> None:
        if not self.disconnected.is_set():
            try:
                await self.connection.disconnect()
            except Exception:  # noqa: BLE001 - already gone: nothing to close
                pass


class _BumbleCentral:
    def __init__(self, transport: object, device: object) -> None:
        self.transport, self.device = transport, device

    @classmethod
    async def open(cls, hci: str) -> _BumbleCentral:
        from bumble.device import Device
        from bumble.transport import open_transport

        try:
            transport = await open_transport(hci)
        except Exception as error:
            raise BleError(f"HCI transport {hci}: cannot open ({error}). For kws sim --ble use the "
                           "tcp-client:127.0.0.1:PORT it prints") from error
        device = Device.with_hci("kws monitor", "F0:4B:57:53:00:02", transport.source, transport.sink)
        try:
            await asyncio.wait_for(device.power_on(), 10)
        except (TimeoutError, Exception) as error:
            await transport.close()
            raise BleError(f"HCI transport {hci}: no Bluetooth controller answered ({error})") from error
        return cls(transport, device)

    async def find(self, target: str | None, service: str, timeout: float,
                   skip: set[str]) -> tuple[str, str | None] | None:
        from bumble.core import UUID, AdvertisingData

        wanted = UUID(service)
        found: asyncio.Future[tuple[str, str | None]] = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: object) -> None:
            services = advertisement.data.get(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []
            name = advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
            address = str(advertisement.address).split("/")[0]
            if wanted in services and address not in skip and _matches(target, name, address) is not False \
                    and not found.done():
                found.set_result((address, name))

        self.device.on(self.device.EVENT_ADVERTISEMENT, on_advertisement)
        await self.device.start_scanning(active=True, filter_duplicates=False)
        try:
            return await asyncio.wait_for(found, timeout)
        except TimeoutError:
            return None
        finally:
            self.device.remove_listener(self.device.EVENT_ADVERTISEMENT, on_advertisement)
            await self.device.stop_scanning()

    async def connect(self, address: str, service: str) -> _BumbleGatt:
        from bumble.core import UUID
        from bumble.device import Peer

        try:
            connection = await self.device.connect(address, timeout=10)
        except Exception as error:  # noqa: BLE001 - a timeout or an HCI error: try again
            raise _Disconnected(str(error) or type(error).__name__) from error
        gatt = _BumbleGatt(connection, Peer(connection))
        try:
            await gatt.peer.discover_services()  # ours, and GAP's: its device name identifies the board
            if not gatt.peer.get_services_by_uuid(UUID(service)):
                raise BleError(f"{address} advertises no nano-kws service {service} on connection")
            await gatt.peer.discover_characteristics()
        except BleError:
            await gatt.close()
            raise
        except Exception as error:  # noqa: BLE001 - the link dropped during discovery
            await gatt.close()
            raise _Disconnected(str(error) or type(error).__name__) from error
        return gatt

    async def close(self) -> None:
        try:
            await self.device.power_off()
        finally:
            await self.transport.close()


# ---- bleak: the operating system's Bluetooth stack ----

class _BleakGatt:
    def __init__(self, client: object, disconnected: asyncio.Event) -> None:
        self.client, self.disconnected = client, disconnected

    async def read(self, uuid: str) -> bytes:
        from bleak.exc import BleakError

        try:
            return bytes(await self.client.read_gatt_char(uuid))
        except (TimeoutError, BleakError, EOFError) as error:
            raise _Disconnected(str(error) or type(error).__name__) from error

    async def subscribe(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        await self.client.start_notify(uuid, lambda _characteristic, data: callback(bytes(data)))

    async def close(self) -> None:
        try:
            await self.client.disconnect()
        except Exception:  # noqa: BLE001 - already gone: nothing to close
            pass


class _BleakCentral:
    @classmethod
    async def open(cls) -> _BleakCentral:
        return cls()

    async def find(self, target: str | None, service: str, timeout: float,
                   skip: set[str]) -> tuple[str, str | None] | None:
        from bleak import BleakScanner

        names: dict[str, str | None] = {}

        def wanted(device: object, advertisement: object) -> bool:
            names[device.address] = advertisement.local_name
            return service in advertisement.service_uuids and device.address not in skip \
                and _matches(target, advertisement.local_name, device.address) is not False

        try:
            device = await BleakScanner.find_device_by_filter(wanted, timeout=timeout, service_uuids=[service])
        except Exception as error:
            raise _adapter_error(error) from error
        # BlueZ's Name comes from the scan response or the GAP name it read on an earlier connection
        return (device.address, names.get(device.address) or device.name) if device else None

    async def connect(self, address: str, service: str) -> _BleakGatt:
        from bleak import BleakClient
        from bleak.exc import BleakError

        disconnected = asyncio.Event()
        client = BleakClient(address, disconnected_callback=lambda _client: disconnected.set(), timeout=10)
        try:
            await client.connect()
        except (TimeoutError, BleakError, EOFError) as error:
            raise _Disconnected(str(error) or type(error).__name__) from error
        except Exception as error:
            raise _adapter_error(error) from error
        if client.services.get_service(service) is None:
            await client.disconnect()
            raise BleError(f"{address} has no nano-kws service {service}: another device with the same name?")
        return _BleakGatt(client, disconnected)

    async def close(self) -> None:
        pass


def _adapter_error(error: Exception) -> BleError:
    """What the operating system's refusal means, in a sentence the user can act on."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakDBusError

    reason = getattr(error, "reason", None)
    if isinstance(error, BleakBluetoothNotAvailableError):
        if reason == BleakBluetoothNotAvailableReason.POWERED_OFF:
            return BleError("Bluetooth is switched off: switch it on (Linux: bluetoothctl power on)")
        if reason in (BleakBluetoothNotAvailableReason.DENIED_BY_USER, BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
                      BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN):
            return BleError(f"no permission to use Bluetooth ({error}): allow this terminal to use Bluetooth")
        return BleError(f"no Bluetooth adapter ({error}): plug one in, or use --hci for a bumble transport")
    if isinstance(error, BleakDBusError) and "AccessDenied" in str(error.dbus_error):
        return BleError(f"no permission to use Bluetooth through BlueZ ({error.dbus_error}): add your user to the "
                        "'bluetooth' group, or run with the rights BlueZ's D-Bus policy asks for")
    if isinstance(error, (FileNotFoundError, ConnectionRefusedError)):
        return BleError(f"no Bluetooth stack to talk to ({error}): on Linux, BlueZ's D-Bus service is not running "
                        "(apt-get install bluez; systemctl start bluetooth); with no adapter at all, use --hci "
                        "with a USB dongle through bumble (usb:0)")
    return BleError(f"Bluetooth adapter: {type(error).__name__}: {error}")
