"""The board, from the host: what the firmware runs, reachable and mirrored in Python.

- `core`: the firmware's portable C core (firmware/lib/kws_core) through ctypes: feature scaling, the recognizer,
  the protocol's frame decoder and line builder. The host runs the board's own C, not a re-implementation.
- `protocol`: the host side of the serial protocol (docs/protocol.md), pure Python.
- `firmware`: constants and build flags read from the firmware's sources.
- `pipeline`: the firmware's main loop on the host (`StreamingPipeline`: audio in, detections out, stride by stride).
- `sim`: the virtual board (`kws sim`): the pipeline behind the board's serial protocol on a pseudo-terminal;
  `ble_peripheral`: its Bluetooth LE service on a virtual radio (`kws sim --ble`).
"""
