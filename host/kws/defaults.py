"""Defaults that `kws --help` shows, kept apart from the modules that use them: those import numpy, and the help of
every command answers without it (`tests/test_end_to_end.py`)."""

from __future__ import annotations

# kws calibrate: every keyword's threshold within this many grid steps of a shared one (None: free). Fitted free on
# one half of speech_commands_12's validation speakers, 1 FA/h became 9.75 and 4.25 on the other half (each way
# round); held within 2 steps, 7.75 and 0.5, at a false-reject rate 2 and 11 points higher
# (scripts/calibration_spread.py).
SPREAD = 2
