"""Defaults that `kws --help` shows, kept apart from the modules that use them: those import numpy, and the help of
every command answers without it (`tests/test_end_to_end.py`)."""

from __future__ import annotations

import math

# kws calibrate: every keyword's threshold within this many grid steps of a shared one (None: free). Fitted free on
# one half of speech_commands_12's validation speakers, 1 FA/h became 9.75 and 4.25 on the other half (each way
# round); held within 2 steps, 7.75 and 0.5, at a false-reject rate 2 and 11 points higher
# (scripts/calibration_spread.py).
SPREAD = 2

# Zero events in T hours put the 95% upper bound of a Poisson rate at this / T (chi2.ppf(0.975, 2) / 2).
ZERO_EVENT_BOUND = 3.689
# Streams are never shorter by default: a keyword stream needs a few hundred words for its false-reject rate.
MIN_STREAM_MINUTES = 10


def minutes_to_resolve(fa_per_hour: float) -> int:
    """The default length of an evaluation stream (kws report, kws calibrate): long enough that a false-accept
    target of `fa_per_hour` can be shown met. A rate is met when even its 95% upper bound is below the target, and
    the least that bound can be, with no false accept at all in T hours, is ZERO_EVENT_BOUND / T: so T must be at
    least ZERO_EVENT_BOUND / target (222 min at 1/h). Any shorter, a perfect recognizer's zero and one above the
    target that had luck look the same, and a 10-minute stream printed 78/h for 13 false accepts, whose one more or
    less moved it by 6/h."""
    return max(MIN_STREAM_MINUTES, math.ceil(60 * ZERO_EVENT_BOUND / fa_per_hour))


def resolves(hours: float, fa_per_hour: float) -> bool:
    """Whether `hours` of non-keyword stream can show a false-accept target of `fa_per_hour` met (see above)."""
    return hours * fa_per_hour >= ZERO_EVENT_BOUND

# `kws sim --ble`: where its virtual radio's host adapter speaks HCI (a bumble transport), unless told otherwise.
SIM_BLE_HCI = "tcp-server:127.0.0.1:8741"
