"""`kws monitor`: watch a board's detections live, with rolling latency figures and an optional JSONL log.

Passive: it never sends a frame (a frame would take the board's input over), it only reads lines. Garbage lines
(bad CRC, unparsable) are counted and skipped; a disconnect is waited out by `device.Connection`.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TextIO

from kws.board.protocol import Garbage, Message
from kws.device.link import Connection

ROLLING = 100  # detections the rolling percentiles cover


def percentile(values: list[int] | deque[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..100) of a non-empty collection: a value that actually occurred."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * q / 100)) - 1]


def detection_record(message: Message, received_at: float) -> dict:
    """The JSONL log entry of one DET line."""
    record = {"label": message.fields["label"], "score": message.get_int("score"),
              "time_ms": message.get_int("t_ms"), "fe_us": message.get_int("fe_us"),
              "inf_us": message.get_int("inf_us"), "step_us": message.get_int("step_us"),
              "received_at": round(received_at, 6)}
    if "est_m4_us" in message.fields:
        record["est_m4_us"] = message.get_int("est_m4_us")
    return record


class Monitor:
    """Consumes events and keeps the counts and rolling latencies; `handle` prints as it goes."""

    def __init__(self, out: TextIO, log: TextIO | None = None) -> None:
        self.out, self.log = out, log
        self.detections = 0
        self.inf_us: deque[int] = deque(maxlen=ROLLING)
        self.step_us: deque[int] = deque(maxlen=ROLLING)

    def handle(self, event: Message | Garbage, received_at: float) -> None:
        if isinstance(event, Garbage) or event.tag not in ("DET", "HELLO", "STATS", "MODE", "ERR"):
            return
        try:
            text = self._describe(event, received_at)
        except (KeyError, ValueError) as error:  # a well-formed line missing a field: say so and go on
            text = f"{event.tag}: {error}"
        print(text, file=self.out, flush=True)

    def _describe(self, message: Message, received_at: float) -> str:
        fields = message.fields
        if message.tag == "HELLO":
            return (f"board: model {fields.get('model')} ({fields.get('model_id')}), labels {fields.get('labels')}, "
                    f"mode {fields.get('mode')}, timing {fields.get('timing')}, firmware {fields.get('fw')}")
        if message.tag == "STATS":
            return (f"stats: {fields.get('steps')} steps, fe {fields.get('fe_us_avg')}/{fields.get('fe_us_max')} us "
                    f"avg/max, inf {fields.get('inf_us_avg')}/{fields.get('inf_us_max')} us, "
                    f"overruns {fields.get('overruns')}, bad frames {fields.get('bad_frames')}"
                    + (f", BLE {fields['ble_notified']} notified, {fields.get('ble_dropped')} dropped, "
                       f"{fields.get('ble_connections')} connections" if "ble_notified" in fields else ""))
        if message.tag != "DET":
            return " ".join([message.tag, *(f"{key}={value}" for key, value in fields.items())])
        record = detection_record(message, received_at)
        self.detections += 1
        self.inf_us.append(record["inf_us"])
        self.step_us.append(record["step_us"])
        if self.log is not None:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()  # one line per detection survives a crash or Ctrl-C
        estimate = f" (M4 est {record['est_m4_us']} us)" if "est_m4_us" in record else ""
        return (f"{record['time_ms'] / 1000:9.2f} s  {record['label']:<10} score {record['score']:3d}  "
                f"fe {record['fe_us']} us  inf {record['inf_us']} us{estimate}  step {record['step_us']} us  |  "
                f"p50/p90 inf {percentile(self.inf_us, 50)}/{percentile(self.inf_us, 90)} us, "
                f"step {percentile(self.step_us, 50)}/{percentile(self.step_us, 90)} us")


def run(port: str | None, log_path: str | None = None, duration: float | None = None,
        out: TextIO | None = None, stop: threading.Event | None = None, ble: str | None = None,
        hci: str | None = None) -> int:
    """Monitors until duration seconds passed, stop is set or Ctrl-C; returns the exit status. With ble (a name,
    an address, or "" for any board) the events come over Bluetooth LE (kws.device.ble), else over the serial port."""
    out = out or sys.stdout
    log = Path(log_path).open("a", encoding="utf-8") if log_path else None

    def notice(text: str) -> None:
        print(text, file=out, flush=True)

    try:
        if ble is not None:
            from kws.device.ble import BleLink

            link = BleLink(ble or None, hci, notice=notice)
        else:
            link = Connection(port, notice=notice)
        with link as connection:
            print(f"monitoring {connection.port}" + (f", logging detections to {log_path}" if log_path else ""),
                  file=out, flush=True)
            monitor = Monitor(out, log)
            deadline = time.monotonic() + duration if duration is not None else float("inf")
            try:
                while time.monotonic() < deadline and not (stop and stop.is_set()):
                    event = connection.next_event(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
                    if event is not None:
                        monitor.handle(event, time.time())
            except KeyboardInterrupt:
                pass
            missed = f", {connection.sequence.missed} detections lost" if ble is not None else ""
            print(f"{monitor.detections} detections, {connection.garbage} garbage lines, "
                  f"{connection.reconnects} reconnects{missed}", file=out, flush=True)
    finally:
        if log is not None:
            log.close()
    return 0
