"""The MLPerf MFCC front end through the whole pipeline: a model trained on it exports the tables and scaling the
firmware needs, the firmware's own feature provider (built here with the host compiler) gives the int8 window the
host tools give, and evaluation and streaming agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kws.board.pipeline import StreamingPipeline
from kws.common.paths import REPO_ROOT
from kws.evaluation.evaluate import ModelDir
from kws.frontends import dispatch as frontends
from kws.frontends import mfcc

FIRMWARE = REPO_ROOT / "firmware"


@pytest.fixture(scope="module")
def mfcc_model(tmp_path_factory: pytest.TempPathFactory, tiny_config_path: Path, synth_data: Path) -> Path:
    """The tiny yes/no model on the MLPerf MFCCs, trained briefly and exported."""
    from kws import config as config_module
    from kws.data.features import features
    from kws.training.export import export
    from kws.training.train import train

    text = tiny_config_path.read_text().replace("[augment]", '[frontend]\nkind = "mlperf_mfcc"\nchannels = 10\n\n'
                                                              "[augment]")
    text = text.replace("epochs = 12", "epochs = 3")
    path = tmp_path_factory.mktemp("mfcc_config") / "tiny_mfcc.toml"
    path.write_text(text)
    config = config_module.load(path)
    data = features(config, [synth_data], cache_dir=tmp_path_factory.mktemp("mfcc_cache"))
    model_path = train(config, data, tmp_path_factory.mktemp("mfcc_run"), verbose=False)
    out = tmp_path_factory.mktemp("mfcc_models") / "tiny_mfcc"
    export(config, model_path, data, out)
    return out


def _clip(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    voiced = np.sin(2 * np.pi * (300 + 400 * t) * t) * (np.abs(t - 0.5) < 0.2)
    return (3000 * voiced + rng.normal(0, 60, 16000)).astype(np.int16)


def test_the_header_carries_the_front_end_and_its_tables(mfcc_model: Path) -> None:
    header = (mfcc_model / "model_settings.h").read_text()
    macros = dict(re.findall(r"^#define (KWS_\w+) (.+)$", header, flags=re.M))
    assert macros["KWS_FE_MLPERF_MFCC"] == "1" and macros["KWS_SLICE_SIZE"] == "10"
    tables = mfcc.default_tables()
    window = re.search(r"KWS_MFCC_WINDOW\[\d+\] = \{([^}]*)\}", header).group(1)
    np.testing.assert_array_equal(np.array(window.replace("\n", "").split(","), np.int64), tables.window)
    model_dir = ModelDir(mfcc_model)
    model = model_dir.int8()
    scaling = model_dir.scaling(model)
    assert (int(macros["KWS_FEATURE_MULTIPLIER"]), int(macros["KWS_FEATURE_SHIFT"])) == (scaling.multiplier,
                                                                                        scaling.shift)


def _firmware_feature_window(model_dir: Path, build: Path) -> Path:
    """firmware/src/mfcc_feature_provider.cpp and kws_core, built with the model's header by the host compiler."""
    cc, cxx = shutil.which("cc"), shutil.which("c++")
    assert cc and cxx, "a host C and C++ compiler (scripts/install.sh installs gcc and g++)"
    includes = [f"-I{FIRMWARE / 'src'}", f"-I{FIRMWARE / 'lib' / 'kws_core'}", f"-I{model_dir}"]
    objects = []
    for source in (FIRMWARE / "lib" / "kws_core").glob("*.c"):
        objects.append(build / f"{source.stem}.o")
        subprocess.run([cc, "-std=c99", "-O1", "-c", *includes, str(source), "-o", str(objects[-1])], check=True)
    program = build / "feature_window"
    subprocess.run([cxx, "-std=gnu++14", "-O1", "-Wall", "-Werror", *includes,
                    str(FIRMWARE / "src" / "mfcc_feature_provider.cpp"), str(FIRMWARE / "src" / "feature_provider.cpp"),
                    str(FIRMWARE / "test" / "host" / "feature_window.cpp"), *map(str, objects), "-o", str(program)],
                   check=True, capture_output=True, text=True)
    return program


def test_the_firmware_feature_provider_gives_the_host_tools_window_byte_for_byte(mfcc_model: Path,
                                                                                tmp_path: Path) -> None:
    program = _firmware_feature_window(mfcc_model, tmp_path)
    model_dir = ModelDir(mfcc_model)
    scaling = model_dir.scaling(model_dir.int8())
    stream = np.concatenate([_clip(1), _clip(2)[:7000]])  # longer than a window: the ring wraps
    board = subprocess.run([str(program)], input=stream.astype("<i2").tobytes(), capture_output=True, check=True)
    pipeline = StreamingPipeline(model_dir)
    pipeline.feed(stream)
    np.testing.assert_array_equal(np.frombuffer(board.stdout, np.int8).reshape(49, 10), pipeline.window())
    # evaluation's clip path (reset, one clip) is the same computation
    clip = stream[-16000:]
    pipeline.reset()
    pipeline.feed(clip)
    evaluated = scaling.apply(frontends.raw_batch(model_dir.config, [clip], 1, "features"))[0]
    np.testing.assert_array_equal(pipeline.window(), evaluated)


def test_a_short_input_leaves_silent_frames_and_says_the_window_is_not_full(mfcc_model: Path, tmp_path: Path) -> None:
    program = _firmware_feature_window(mfcc_model, tmp_path)
    board = subprocess.run([str(program)], input=_clip(3)[:8000].astype("<i2").tobytes(), capture_output=True)
    assert board.returncode == 3  # feature_provider_full() is false after 24 frames
    pipeline = StreamingPipeline(ModelDir(mfcc_model))
    pipeline.feed(_clip(3)[:8000])
    np.testing.assert_array_equal(np.frombuffer(board.stdout, np.int8).reshape(49, 10), pipeline.window())


def test_the_memory_map_counts_the_mfcc_state_where_the_firmware_declares_it(mfcc_model: Path) -> None:
    from kws.cost.memory import budget

    config = ModelDir(mfcc_model).config
    measurement = {"instructions": {"layers": [{"op": "CONV_2D"}]},
                   "memory": {"code_bytes": {"tflm_runtime_and_kernels": 50_000, "frontend": 9_000},
                              "frontend_heap_bytes": 0}}
    ram = {part["part"]: part["bytes"] for part in budget(config, 40_000, 30_000, ["CONV_2D"], measurement,
                                                          True)["ram"]["parts"]}
    source = (FIRMWARE / "src" / "mfcc_feature_provider.cpp").read_text()
    assert "int32_t g_storage[KWS_MFCC_STORAGE_WORDS(" in source and "int32_t g_mfccs[kWindowValues]" in source
    assert ram["MLPerf MFCC state (frame, FFT buffer, mel ring)"] == 4 * (480 + 512 + 49 * (40 + 2))
    assert ram["Q16 MFCC window (49x10)"] == 4 * 490
    assert not any("microfrontend" in part for part in ram)
