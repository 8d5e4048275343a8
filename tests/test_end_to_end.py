"""A small run through the whole host pipeline: synthetic speech -> train -> int8 export -> evaluation."""

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import kws
from kws import cli
from kws.common.paths import REPO_ROOT, portable, repo_relative


def test_int8_model_beats_chance_on_held_back_speakers(tiny_model, synth_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert cli.main(["eval", "--model", str(tiny_model), "--data", str(synth_data), "--split", "test",
                     "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    int8 = result["int8"]
    assert int8["clips"] >= 20
    assert sum(row["clips"] for row in int8["per_class"].values()) == int8["clips"]
    largest_class = max(row["clips"] for row in int8["per_class"].values()) / int8["clips"]
    # Chance is the largest class's share; a model that learned nothing cannot pass 0.75.
    assert int8["accuracy"] >= max(0.75, largest_class + 0.3)
    assert abs(result["int8_minus_float"]) <= 0.1
    assert "int8 accuracy" in capsys.readouterr().out


def test_cli_train_and_export_record_the_recipe(tiny_config_path, synth_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NANO_KWS_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "short.toml"
    config.write_text(tiny_config_path.read_text().replace("epochs = 12", "epochs = 2"))
    data = ["--data", str(synth_data)]
    assert cli.main(["train", "--config", str(config), *data, "--out", str(tmp_path / "run")]) == 0
    export = ["export", "--config", str(config), "--model", str(tmp_path / "run" / "model.keras"), *data,
              "--out", str(tmp_path / "model")]
    assert cli.main(export) == 0
    # A second export into the same folder is refused, the first model untouched; forced, it replaces the model
    # and removes the report of the old one.
    (tmp_path / "model" / "report").mkdir()
    first = (tmp_path / "model" / "model_card.json").read_bytes()
    assert cli.main(export) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "model" / "model_card.json").read_bytes() == first
    assert cli.main([*export, "--force"]) == 0 and not (tmp_path / "model" / "report").exists()
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    trained, exported = card["recipe"]
    assert trained.startswith("kws train --config") and repo_relative(synth_data) in trained
    assert exported.startswith("kws export --config") and "--model" in exported
    assert card["training"]["seconds"] > 0 and card["training"]["best"]["epoch"] >= 1
    evaluate = ["eval", "--model", str(tmp_path / "model"), "--data", str(synth_data), "--update-card", "--split"]
    assert cli.main([*evaluate, "validation"]) == 0 and cli.main([*evaluate, "test"]) == 0
    # The card holds the last evaluation, so the recipe holds the command that made it, once.
    recipe = json.loads((tmp_path / "model" / "model_card.json").read_text())["recipe"]
    assert recipe[:2] == [trained, exported] and len(recipe) == 3
    assert recipe[2].startswith("kws eval --model") and recipe[2].endswith("--split test")


def test_monitor_help_answers_without_loading_tensorflow():
    import subprocess
    import sys
    import time

    started = time.monotonic()
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "kws.cli", "monitor", "--help"],
                            capture_output=True, text=True, check=True)
    assert time.monotonic() - started < 1.0
    assert "--port" in result.stdout
    assert "tensorflow" not in result.stderr and "numpy" not in result.stderr


def test_eval_scores_each_training_clip_once(tiny_model, tiny_run, synth_data, tmp_path):
    config, data, _ = tiny_run
    raw, targets = data.clips("train")
    assert len(raw) * (1 + config.augment.copies) == len(data.raw["train"])
    np.testing.assert_array_equal(targets, data.targets["train"][: len(raw)])
    out = tmp_path / "train_eval.json"
    assert cli.main(["eval", "--model", str(tiny_model), "--data", str(synth_data), "--split", "train",
                     "--backend", "litert", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["int8"]["clips"] == len(raw)


def test_a_test_set_kept_apart_evaluates_and_says_which_clips(tiny_model, synth_data, tmp_path, capsys):
    # A folder with only a test.csv: no training clips at all, which evaluation does not need.
    words = ("yes", "no", "up", "tree")
    rows = [f"{word}/{path.name},{word}" for word in words for path in sorted((synth_data / word).glob("*.wav"))[:5]]
    test_set = tmp_path / "test_set"
    for row in rows:
        (test_set / row.split("/")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_data / row.split(",")[0], test_set / row.split(",")[0])
    (test_set / "test.csv").write_text("file,class\n" + "\n".join(rows) + "\n")
    out = tmp_path / "eval.json"
    for split in ("all", "heldout"):
        assert cli.main(["eval", "--model", str(tiny_model), "--data", str(test_set), "--split", split,
                         "--json", str(out)]) == 0
        clips = json.loads(out.read_text())["int8"]["clips"]
        printed = capsys.readouterr()
        assert f"scoring {clips} clips of split '{split}'" in printed.err
        # the interval always: a handful of clips scores 0 or 1 by chance
        assert re.search(rf"int8 accuracy [\d.]+ \(95% CI [\d.]+–[\d.]+\) on {clips} clips", printed.out)
        assert clips >= 10  # the 10 keyword clips, unknown words drawn to their share, silence


@pytest.mark.parametrize("columns", ["80", "40", "200"])
def test_every_option_has_help_and_shows_its_default(columns, monkeypatch):
    # At any terminal width and wherever the repository sits: a default inside it is shown as typed there
    # (models/speech_commands_12), never as this clone's absolute path, and no line breaks at a hyphen.
    monkeypatch.setenv("COLUMNS", columns)
    parser = cli.build_parser()
    commands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)][0].choices
    parsers = {name: sub for name, sub in commands.items() if name != "data"}
    data = [action for action in commands["data"]._actions if isinstance(action, argparse._SubParsersAction)][0]
    parsers.update({f"data {name}": sub for name, sub in data.choices.items()})
    for name, sub in parsers.items():
        help_text = sub.format_help()
        assert str(REPO_ROOT) not in help_text, f"kws {name}: an absolute path of this clone in the help"
        # A value, not the name of the constant that holds it (kws calibrate --spread showed kws.evaluation.calibrate.SPREAD).
        assert not re.search(r"\bkws\.\w+\.[A-Z_]{2,}\b", help_text), f"kws {name}: a constant's name in the help"
        text = " ".join(help_text.split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"kws {name} {action.dest}: no help"
            if action.default not in (None, False, []) and not action.required:
                shown = portable(action.default)  # repository-relative when inside it
                assert f"(default: {shown})" in text, f"kws {name} {action.dest}: default not shown"
    assert "(default: models/speech_commands_12)" in " ".join(parsers["sim"].format_help().split())
    assert "(default: configs/quickstart.toml)" in " ".join(parsers["quickstart"].format_help().split())
    assert "(default: 2)" in " ".join(parsers["calibrate"].format_help().split())
    scoring = {name: parsers[name].parse_args(["--model", "m", "--data", "d"]).split for name in ("eval", "report")}
    assert scoring == {"eval": "heldout", "report": "heldout"}
    assert parsers["bench"].parse_args(["--data", "d"]).split == "heldout"


def test_version_and_the_sim_default_is_a_shipped_model(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"kws {kws.__version__}"
    default = Path(cli.build_parser().parse_args(["sim"]).model)
    assert (default / "model.tflite").exists() and (default / "config.toml").exists()
