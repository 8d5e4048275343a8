"""nano-kws: keyword spotting for the Arduino Nano 33 BLE Sense, from a config file to the board."""

__version__ = "0.1.0"
