"""A small run through the whole host pipeline: synthetic speech -> train -> int8 export -> evaluation."""

import json

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
