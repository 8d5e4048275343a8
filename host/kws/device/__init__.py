"""Device tools: talking to a board (or the virtual board) over its serial port, and measuring its power.

- `link`: the serial link (`Connection`) the tools share; `monitor` (`kws monitor`), `stream` (`kws stream`),
  `mic` (the host's microphone), `bench` (`kws bench`: accuracy, latency, energy on labelled clips); `ble`: the
  same events over Bluetooth LE (`kws monitor --ble`);
- `power`: measured energy (`kws bench --power`); the monitors `ppk2`, `joulescope_monitor`, `virtual_ppk2` (for
  the virtual board) hand back what `power_trace` defines.
"""
