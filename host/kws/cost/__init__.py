"""Cost: what a model costs on the board.

- `estimate`: MACs, Cortex-M4 instructions, time and energy from the .tflite alone (rates in m4_cost_rates.json);
- `ble`: what Bluetooth LE adds (advertising, an idle connection, a notification per detection, the stats reads)
  and the latency a connection interval adds, from the radio's datasheet currents ([board] radio_*);
- `memory`: flash and RAM of the firmware with a model, against the board and the config's targets;
- `m4`: `kws m4`: the firmware's own front end and model runner on a Cortex-M4 under QEMU, compared byte for byte
  with the host and counted instruction by instruction (m4_measurement.json).
"""
