"""The problem definition: every bad key or value is refused with its name."""

from pathlib import Path

import pytest

from kws import config as config_module
from kws.config import ConfigError, from_dict

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    config = config_module.load(path)
    assert config.labels[-len(config.keywords.words):] == config.keywords.words
    assert config.num_slices == 49


def test_defaults_are_micro_speech():
    config = from_dict({})
    assert config.labels == ("silence", "unknown", "yes", "no")
    fe = config.frontend
    assert (fe.window_ms, fe.stride_ms, fe.channels, fe.lower_band_hz, fe.upper_band_hz) == (30, 20, 40, 125.0, 7500.0)
    assert (config.clip_samples, config.stride_samples, config.window_samples) == (16000, 320, 480)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"model": {"fliters": 8}}, "model.fliters"),
        ({"colour": "red"}, "colour"),
        ({"model": {"filters": "8"}}, "model.filters"),
        ({"model": {"architecture": "resnet9000"}}, "model.architecture"),
        ({"keywords": {"words": []}}, "keywords.words"),
        ({"keywords": {"words": ["yes", "yes"]}}, "keywords.words"),
        ({"keywords": {"words": ["silence"]}}, "keywords.words"),
        ({"keywords": {"words": ["yes"], "unknown_words": ["yes"]}}, "keywords.unknown_words"),
        ({"augment": {"snr_db": [20, 5]}}, "augment.snr_db"),
        ({"augment": {"snr_db": [5]}}, "augment.snr_db"),
        ({"recognizer": {"threshold": 300}}, "recognizer.threshold"),
        ({"recognizer": {"false_accepts_per_hour": 0}}, "recognizer.false_accepts_per_hour"),
        ({"training": {"qat": "yes"}}, "training.qat"),
        ({"audio": {"sample_rate": 44100}}, "audio.sample_rate"),
        ({"frontend": {"upper_band_hz": 9000.0}}, "frontend.upper_band_hz"),
        ({"frontend": {"kind": "mfcc"}}, "frontend.kind"),
        ({"frontend": {"kind": "mlperf_mfcc", "channels": 13}}, "frontend.channels"),
        ({"frontend": {"kind": "mlperf_mfcc", "channels": 10, "stride_ms": 10}}, "frontend.kind"),
        ({"keywords": "yes"}, "keywords"),
        ({"split": {"validation_percent": 50, "test_percent": 50}}, "split.validation_percent"),
        ({"split": {"test_percent": -5}}, "split.test_percent"),
        ({"augment": {"rt60_ms": [800, 100]}}, "augment.rt60_ms"),
        ({"training": {"restore_best": 1}}, "training.restore_best"),
        ({"training": {"weight_average": 0.99}}, "training.weight_average"),
    ],
)
def test_errors_name_the_key(raw, named):
    with pytest.raises(ConfigError) as error:
        from_dict(raw)
    assert f"'{named}'" in str(error.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\narchitecture = 1")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        config_module.load(bad)
    with pytest.raises(ConfigError, match="missing.toml: no such config file"):
        config_module.load(tmp_path / "missing.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text('[training]\nepochz = 3\n')
    with pytest.raises(ConfigError, match=r"typo.toml: unknown key 'training.epochz'"):
        config_module.load(typo)


def test_digest_tracks_the_named_sections():
    base = from_dict({})
    changed_model = from_dict({"model": {"filters": 16}})
    changed_frontend = from_dict({"frontend": {"channels": 32}})
    assert base.digest("frontend") == changed_model.digest("frontend")
    assert base.digest("frontend") != changed_frontend.digest("frontend")


def test_the_names_a_config_may_give_are_the_registries_keys():
    """config.py names the architectures and teacher front ends without importing the code behind them (which
    imports Config); the registries must hold exactly those names."""
    from kws.frontends.teacher_mfcc import FRONTENDS
    from kws.training.models import ARCHITECTURES

    assert tuple(ARCHITECTURES) == config_module.ARCHITECTURE_NAMES
    assert tuple(FRONTENDS) == config_module.TEACHER_FRONTEND_NAMES
