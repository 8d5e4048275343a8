"""A small run through the whole host pipeline: synthetic speech -> train -> int8 export -> evaluation."""

import json

import numpy as np

from kws import cli


def test_int8_model_beats_chance_on_held_back_speakers(tiny_model, synth_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert cli.main(["eval", "--model", str(tiny_model), "--data", str(synth_data), "--split", "test",
                     "--json", str(out), "--no-cache"]) == 0
    result = json.loads(out.read_text())
    int8 = result["int8"]
    assert int8["clips"] >= 20
    assert sum(row["clips"] for row in int8["per_class"].values()) == int8["clips"]
    largest_class = max(row["clips"] for row in int8["per_class"].values()) / int8["clips"]
    # Chance is the largest class's share; a model that learned nothing cannot pass 0.75.
    assert int8["accuracy"] >= max(0.75, largest_class + 0.3)
    assert abs(result["int8_minus_float"]) <= 0.1
    assert "int8 accuracy" in capsys.readouterr().out


def test_cli_train_and_export_record_the_recipe(tiny_config_path, synth_data, tmp_path):
    config = tmp_path / "short.toml"
    config.write_text(tiny_config_path.read_text().replace("epochs = 12", "epochs = 2"))
    data = ["--data", str(synth_data), "--no-cache"]
    assert cli.main(["train", "--config", str(config), *data, "--out", str(tmp_path / "run")]) == 0
    assert cli.main(["export", "--config", str(config), "--model", str(tmp_path / "run" / "model.keras"), *data,
                     "--out", str(tmp_path / "model")]) == 0
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    trained, exported = card["recipe"]
    assert trained.startswith("kws train --config") and str(synth_data) in trained
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
                     "--backend", "litert", "--json", str(out), "--no-cache"]) == 0
    assert json.loads(out.read_text())["int8"]["clips"] == len(raw)
