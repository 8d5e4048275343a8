"""Shared fixtures: a small synthetic dataset and a model trained and exported from it, made once per test run.

Tests never read ../shared/data: espeak-ng speaks the words, numpy makes the noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_CONFIG = """\
name = "tiny_yes_no"

[keywords]
words = ["yes", "no"]
silence_share = 1.0
unknown_share = 1.0
unknown_words = ["up", "down", "cat", "tree"]

[augment]
copies = 1
snr_db = [10.0, 30.0]

[model]
architecture = "tiny_conv"
filters = 8

[training]
epochs = 12
batch_size = 32
learning_rate = 0.005
patience = 12
"""

# 5 accents x 8 variants = 40 synthetic speakers: every split of the speaker-disjoint split gets several.
SYNTH_VOICES = ["en-us", "en-gb", "en-029", "en-gb-scotland", "en-us-nyc"]
SYNTH_SPEEDS = [140, 180]
SYNTH_PITCHES = [40, 60]


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kws.data import synth

    out = tmp_path_factory.mktemp("synth")
    synth.synthesize(["yes", "no", "up", "down", "cat", "tree"], out, voices=SYNTH_VOICES, speeds=SYNTH_SPEEDS,
                     pitches=SYNTH_PITCHES, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_config_path: Path, synth_data: Path):
    """(config, features, trained float model path) for the tiny config on synth_data."""
    from kws import config as config_module
    from kws.data.features import features
    from kws.training.train import train

    config = config_module.load(tiny_config_path)
    data = features(config, [synth_data], cache_dir=tmp_path_factory.mktemp("cache"))
    model_path = train(config, data, tmp_path_factory.mktemp("run"), verbose=False)
    return config, data, model_path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_run) -> Path:
    """An exported model folder (model.tflite, model.keras, model_settings.h, ...) trained on synth_data."""
    from kws.training.export import export

    config, data, model_path = tiny_run
    out = tmp_path_factory.mktemp("models") / "tiny_yes_no"
    export(config, model_path, data, out)
    return out


def tone_word(rng: np.random.Generator, frequency: float, sample_rate: int = 16000) -> np.ndarray:
    """One second with a 0.3-0.5 s tone burst at a random place: a stand-in word with a known voiced span (the
    streaming tests' words; `from conftest import tone_word`)."""
    clip = np.zeros(sample_rate, np.float32)
    length = int(rng.uniform(0.3, 0.5) * sample_rate)
    start = int(rng.integers(0, sample_rate - length))
    clip[start:start + length] = 0.3 * np.sin(2 * np.pi * frequency * np.arange(length) / sample_rate)
    return (clip * 32767).astype(np.int16)
