// ArduinoBLE 1.5.0 glue for the Bluetooth LE service (ble_link.h). The values
// are kws_core's (kws_ble.h); nothing is encoded here.
//
// Who runs what (ArduinoBLE 1.5.0 with ArduinoCore-mbed 4.5.0):
// - The link layer (Cordio's controller, in the core's libmbed.a) runs in its
//   own mbed thread, started by BLE.begin() (HCICordioTransport.cpp: begin()
//   creates bleLoopThread, normal priority, the default 4 KB stack, on the
//   heap) plus the radio's interrupts. The thread dispatches Cordio's WSF
//   events every 10 ms tick and sleeps in between (bleLoop()).
// - ArduinoBLE's host (HCI, L2CAP, ATT, GAP) runs only in the caller's thread:
//   inside BLE.poll() and inside the calls that wait for the controller
//   (BLE.begin(), advertise(), and sendAclPkt when no buffer is free). The
//   controller's events wait in a 256-byte ring until then.
// - BLE.poll() with nothing received is a critical section around an empty
//   ring check (HCI.cpp poll()). With an ATT request it answers it at once
//   (one ACL packet, never waiting here: see below). After a disconnect it
//   re-enables advertising with an HCI command and waits for the controller's
//   answer (HCI.cpp sendCommand: up to 1 s, normally the controller thread's
//   next tick).
#include "ble_link.h"

#include <Arduino.h>
#include <ArduinoBLE.h>
#include <utility/HCI.h>

#include "hello.h"
#include "model_settings.h"

namespace {

// ---- ArduinoBLE's count of ACL packets in flight ----
// HCIClass::sendAclPkt begins with `while (_pendingPkt >= _maxPkt) poll();`:
// with every controller buffer in flight it spins until the controller
// reports one sent, which on a link that is fading out takes until the
// supervision timeout, or forever (ArduinoBLE issue #45, open: a Nano 33 BLE
// hangs in writeValue when the link is lost). So a notification is written
// only while _pendingPkt < _maxPkt (less one, below). Both are private
// members of HCIClass. An explicit instantiation may name a private member
// (the usual access checking rules do not apply to names used to specify
// explicit instantiations, [temp.explicit]), so instantiating PrivateMember
// with &HCIClass::_pendingPkt defines a friend that returns that pointer to
// member: standard C++, no assumption about the class's layout. If ArduinoBLE
// renames or retypes the members this stops compiling, and
// it was compiled against the pinned 1.5.0 (firmware/README.md, Bluetooth LE).
template <typename Tag, typename Tag::type kMember>
struct PrivateMember {
  friend typename Tag::type member_pointer(Tag) { return kMember; }
};
struct PendingPackets {
  using type = uint8_t HCIClass::*;
  friend type member_pointer(PendingPackets);
};
struct MaxPackets {
  using type = uint8_t HCIClass::*;
  friend type member_pointer(MaxPackets);
};
template struct PrivateMember<PendingPackets, &HCIClass::_pendingPkt>;
template struct PrivateMember<MaxPackets, &HCIClass::_maxPkt>;

uint8_t& pending_packets() { return HCI.*member_pointer(PendingPackets()); }
uint8_t max_packets() { return HCI.*member_pointer(MaxPackets()); }

// Notifications leave one buffer free when there are several (the Nano's
// controller has 4: MBED_CONF_CORDIO_LL_TX_BUFFERS in the variant's
// mbed_config.h). A central has one ATT request outstanding at a time, and
// ArduinoBLE answers it from BLE.poll() through the same sendAclPkt: with a
// buffer kept for that answer it never waits behind our notifications.
bool buffer_free_for_notification() {
  const uint8_t max = max_packets();
  return pending_packets() + (max > 1 ? 1 : 0) < max;
}

// ---- the service ----
// Values live in ArduinoBLE's heap copies (19 + 512 + 54 bytes).
BLEService g_service(KWS_BLE_SERVICE_UUID);
BLECharacteristic g_detection(KWS_BLE_DETECTION_UUID, BLENotify,
                              KWS_BLE_DETECTION_SIZE, true);
BLECharacteristic g_info(KWS_BLE_INFO_UUID, BLERead, KWS_BLE_INFO_MAX);
BLECharacteristic g_stats(KWS_BLE_STATS_UUID, BLERead, KWS_BLE_STATS_SIZE,
                          true);

// Scan response name and GAP device name (at most 20 bytes in ArduinoBLE).
constexpr char kName[] = KWS_BLE_NAME_PREFIX KWS_MODEL_ID;
static_assert(sizeof(kName) - 1 <= 20, "ArduinoBLE's device name holds 20");

// The Bluetooth Core specification counts advertising intervals in 0.625 ms
// and connection intervals in 1.25 ms; kws_ble.h's are multiples of 5 ms.
static_assert(KWS_BLE_ADVERTISING_INTERVAL_MS * 1000 % 625 == 0 &&
                  KWS_BLE_CONNECTION_INTERVAL_MIN_MS * 1000 % 1250 == 0 &&
                  KWS_BLE_CONNECTION_INTERVAL_MAX_MS * 1000 % 1250 == 0,
              "radio schedule not in the specification's units");
constexpr uint16_t kAdvertisingInterval =
    KWS_BLE_ADVERTISING_INTERVAL_MS * 1000 / 625;
constexpr uint16_t kConnectionIntervalMin =
    KWS_BLE_CONNECTION_INTERVAL_MIN_MS * 1000 / 1250;
constexpr uint16_t kConnectionIntervalMax =
    KWS_BLE_CONNECTION_INTERVAL_MAX_MS * 1000 / 1250;

static_assert(KWS_LINE_MAX <= KWS_BLE_INFO_MAX, "HELLO must fit the info");

bool g_started = false;
kws_ble_counters g_counters;

void on_connected(BLEDevice) {
  ++g_counters.connections;
  // Nothing can be in flight for a link that has just come up, and the last
  // one's packets were flushed (below). A packet that ArduinoBLE wrote to the
  // last link after its disconnect (an answer already waiting in sendAclPkt
  // when the reset below let it go) would otherwise stay counted.
  pending_packets() = 0;
}

// The Bluetooth Core specification (Vol 4, Part E, 4.3) has the host assume,
// on HCI_Disconnection_Complete, that the controller flushed every packet of
// that handle it had not acknowledged and freed their buffers (7.7.19: no
// Number_Of_Completed_Packets may name the handle afterwards). ArduinoBLE
// never does, so a link lost with notifications in flight would keep
// _pendingPkt at _maxPkt, and the next central's ATT responses, sent from
// BLE.poll(), would hang in sendAclPkt (issue #45). There is one connection at
// a time (the controller stops advertising when a central connects, and
// ArduinoBLE resumes only after this event, HCI.cpp handleEventPkt), so every
// packet in flight was this handle's. ArduinoCore-mbed patches Cordio to
// report them completed anyway (its patches/0013); then this is a no-op, as
// ArduinoBLE's count stops at 0.
void on_disconnected(BLEDevice) { pending_packets() = 0; }

}  // namespace

bool ble_link_setup(InputMode mode) {
  kws_ble_counters_init(&g_counters);
  if (!BLE.begin()) return false;
  BLE.setEventHandler(BLEConnected, on_connected);
  BLE.setEventHandler(BLEDisconnected, on_disconnected);
  BLE.setDeviceName(kName);
  bool ok = BLE.setLocalName(kName);
  ok = BLE.setAdvertisedService(g_service) && ok;
  BLE.setAdvertisingInterval(kAdvertisingInterval);
  BLE.setConnectionInterval(kConnectionIntervalMin, kConnectionIntervalMax);
  g_service.addCharacteristic(g_detection);
  g_service.addCharacteristic(g_info);
  g_service.addCharacteristic(g_stats);
  BLE.addService(g_service);
  g_started = true;
  ble_link_set_info(mode);
  kws_ble_stats stats = {};
  stats.free_ram = KWS_BLE_NOT_AVAILABLE;  // until the first STATS period
  ble_link_set_stats(&stats);
  if (!ok || !BLE.advertise()) {
    BLE.end();
    g_started = false;
  }
  return g_started;
}

void ble_link_poll() {
  if (g_started) BLE.poll();
}

void ble_link_set_info(InputMode mode) {
  if (!g_started) return;
  char line[KWS_LINE_MAX + 1];
  size_t length = hello_format(mode, line, sizeof(line));
  if (length > 0 && line[length - 1] == '\n') --length;  // docs/ble.md
  g_info.writeValue(reinterpret_cast<const uint8_t*>(line),
                    static_cast<int>(length));
}

void ble_link_detection(uint8_t label, uint8_t score, uint32_t t_ms,
                        const StepTiming& timing) {
  uint8_t value[KWS_BLE_DETECTION_SIZE];
  const size_t size =
      kws_ble_next_detection(&g_counters, label, score, t_ms, timing.fe_us,
                             timing.inf_us, timing.step_us, value,
                             sizeof(value));
  // Not subscribed includes not connected: ArduinoBLE clears the CCCDs when
  // the central goes.
  const bool can_send = g_started && g_detection.subscribed() &&
                        buffer_free_for_notification();
  const bool sent = can_send && size == KWS_BLE_DETECTION_SIZE &&
                    g_detection.writeValue(value, static_cast<int>(size)) > 0;
  kws_ble_count_sent(&g_counters, sent ? 1 : 0);
}

void ble_link_set_stats(kws_ble_stats* stats) {
  if (!g_started) return;
  stats->ble_notified = g_counters.notified;
  stats->ble_dropped = g_counters.dropped;
  stats->ble_connections = g_counters.connections;
  uint8_t value[KWS_BLE_STATS_SIZE];
  if (kws_ble_encode_stats(stats, value, sizeof(value)) == sizeof(value)) {
    g_stats.writeValue(value, static_cast<int>(sizeof(value)));
  }
}
