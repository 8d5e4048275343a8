"""The README against the files it quotes.

The README's two tables of shipped models (after the markers `<!-- models: tests/test_readme.py -->` and
`<!-- figures: tests/test_readme.py -->`) have one row per folder of `models/` that holds a `model_card.json`. Each
cell's numbers are read back from the model's own files and must agree to the digits the README prints:

- `model_card.json`: model id, labels, front end, architecture, the config in its recipe, the evaluation's int8
  accuracy, clips and split, the targets, sizes, and the recognizer's held-out streams (`kws calibrate`);
- `m4_measurement.json` (`kws m4 --save`): instructions per inference (median), agreement, schedule and arena use;
- `report/metrics.json` (`kws report`): the accuracy's 95% interval, which must be of the card's clips;
- `model.tflite` and `model_settings.h`: the flash and arena sizes and the schedule the firmware compiles.

A README number with d decimals agrees when it is the file's value rounded to d decimals (either way at an exact
half); each value has a least number of decimals, so "0.8" cannot stand for 0.814. When a row disagrees, the message
gives the row the files give. `python tests/test_readme.py` prints both tables' rows for every model folder.

The candidates table (after `<!-- candidates: tests/test_readme.py -->`) must be, row for row, the comparison
scripts/backbone_table.py recorded in docs/backbone_candidates.json.

It also checks that the README stays short, that its relative links exist, and that every `kws` command in its
code blocks parses with the CLI's own parser (flags that exist, required ones given).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MODELS = ROOT / "models"
MAX_LINES = 250
MODELS_MARKER = "<!-- models: tests/test_readme.py -->"
FIGURES_MARKER = "<!-- figures: tests/test_readme.py -->"
CANDIDATES_MARKER = "<!-- candidates: tests/test_readme.py -->"
CANDIDATES = ROOT / "docs" / "backbone_candidates.json"  # scripts/backbone_table.py --table

# A number as the README prints it: 2,466,400 or 0.814 or 69, not the 4 of "M4" or the 12 of "speech_commands_12".
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?!\w)")


@dataclass
class Cell:
    """One table cell as the files give it: the suggested text, the numbers in order with their least decimals,
    and words that must appear in it."""
    text: str
    numbers: list[tuple[float, int]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    exact: bool = False  # the cell must read exactly `text` (names, labels in output order)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def model_folders() -> list[Path]:
    return sorted(p for p in MODELS.iterdir() if (p / "model_card.json").exists())


def _define(model: Path, name: str) -> str | None:
    match = re.search(rf"^#define {name} (.+)$", (model / "model_settings.h").read_text(), re.M)
    return match.group(1).strip().strip('"') if match else None


def _recipe_config(card: dict) -> str:
    for command in card.get("recipe", []):
        words = shlex.split(command)
        if words[:2] == ["kws", "train"] and "--config" in words:
            return words[words.index("--config") + 1]
    return "not recorded"


def model_cells(model: Path) -> list[Cell]:
    """The models table: name, model id, classes, front end, architecture, training config."""
    card = _load(model / "model_card.json")
    frontend = card["config"]["frontend"].get("kind", "microfrontend")
    return [Cell(f"[{model.name}](models/{model.name})", exact=True),
            Cell(card["model_id"], exact=True),
            Cell(", ".join(card["labels"]), exact=True),
            Cell(frontend, exact=True),
            Cell(card["architecture"], exact=True),
            Cell(f"`{_recipe_config(card)}`", exact=True)]


def figure_cells(model: Path) -> list[Cell]:
    """The figures table: accuracy, M4 instructions and agreement, time and schedule, sizes, held-out streams."""
    card = _load(model / "model_card.json")
    m4 = _load(model / "m4_measurement.json")
    metrics = _load(model / "report" / "metrics.json")
    targets, board = card["config"]["targets"], card["config"]["board"]
    cells = [Cell(f"[{model.name}](models/{model.name})", words=[model.name])]

    evaluation = card.get("evaluation")
    if evaluation is None:
        cells.append(Cell("not evaluated", words=["not evaluated"]))
    else:
        accuracy, clips, split = evaluation["int8_accuracy"], evaluation["int8_clips"], evaluation["split"]
        numbers, text = [(accuracy, 3)], _fmt(accuracy, 3)
        if metrics is not None:
            int8 = metrics["accuracy"]["int8"]
            assert (int8["clips"], round(int8["accuracy"], 4)) == (clips, round(accuracy, 4)), (
                f"{model.name}: report/metrics.json's int8 accuracy {int8['accuracy']} on {int8['clips']} clips is "
                f"not the card's evaluation ({accuracy} on {clips}): the README's interval would be of other clips; "
                f"rerun kws report on the evaluation's split")
            low, high = int8["ci95"]
            numbers += [(low, 3), (high, 3)]
            text += f" ({_fmt(low, 3)}–{_fmt(high, 3)})"
        numbers += [(clips, 0), (targets["accuracy"], 2)]
        text += f", {_fmt(clips, 0)} {split} clips; target {_fmt(targets['accuracy'], 2)}"
        cells.append(Cell(text, numbers, [split]))

    if m4 is None:
        cells += [Cell("not measured", words=["not measured"]), Cell("not measured", words=["not measured"])]
    else:
        instructions = m4["instructions"]["per_inference"]["median"]
        agreement, schedule = m4["agreement"], m4["instructions"]["schedule"]
        if card.get("m4"):
            assert card["m4"]["instructions_per_inference"] == instructions, (
                f"{model.name}: the card's m4 section and m4_measurement.json give different instruction counts")
        assert m4["model"]["tflite_bytes"] == card["sizes"]["tflite_bytes"], (
            f"{model.name}: m4_measurement.json measured another model.tflite than the card's")
        cells.append(Cell(f"{_fmt(instructions, 0)}; {_fmt(agreement['outputs_identical'], 0)} of "
                          f"{_fmt(agreement['clips'], 0)} clips",
                          [(instructions, 0), (agreement["outputs_identical"], 0), (agreement["clips"], 0)]))
        every = int(_define(model, "KWS_INFERENCE_EVERY_STRIDES"))
        assert schedule["inference_every_strides"] == every, (
            f"{model.name}: m4_measurement.json's schedule is every {schedule['inference_every_strides']} strides, "
            f"model_settings.h runs every {every}: rerun kws m4 --save")
        cpi = schedule["cycles_per_instruction"]
        ms = instructions * cpi / board["clock_hz"] * 1e3
        load = schedule["load"] * 100
        cells.append(Cell(f"{_fmt(ms, 1)} ms at {_fmt(cpi, 2)} cycles/instruction (target "
                          f"{_fmt(targets['latency_ms'], 0)}); every {every} strides, {_fmt(load, 0)}%",
                          [(ms, 1), (cpi, 2), (targets["latency_ms"], 0), (every, 0), (load, 0)]))

    flash, arena = card["sizes"]["tflite_bytes"], card["sizes"]["arena_bytes"]
    assert (model / "model.tflite").stat().st_size == flash, f"{model.name}: model.tflite is not the card's size"
    assert int(_define(model, "KWS_ARENA_SIZE")) == arena, f"{model.name}: KWS_ARENA_SIZE is not the card's arena"
    numbers, text = [(flash, 0), (arena, 0)], f"{_fmt(flash, 0)} / {_fmt(arena, 0)}"
    if m4 is not None:
        used = m4["memory"]["arena_used_bytes"]
        numbers.append((used, 0))
        text += f" ({_fmt(used, 0)})"
    cells.append(Cell(text, numbers))

    recognizer = card.get("recognizer")
    if recognizer is None or "heldout" not in recognizer:
        cells.append(Cell("not calibrated", words=["not calibrated"]))
    else:
        held = recognizer["heldout"]
        low, high = held["fa_per_hour_ci95"]
        delay = held["delay_ms"]["median"]
        target = recognizer["target_fa_per_hour"]
        cells.append(Cell(f"{_fmt(held['fa_per_hour'], 2)}/h ({_fmt(low, 2)}–{_fmt(high, 2)}), FRR "
                          f"{_fmt(held['frr'], 2)}, {_fmt(delay, 0)} ms, {_fmt(held['hours'], 0)} h streams; "
                          f"target {_fmt(target, 0)}/h",
                          [(held["fa_per_hour"], 2), (low, 2), (high, 2), (held["frr"], 2), (delay, 0),
                           (held["hours"], 0), (target, 0)]))
    return cells


def _table_after(lines: list[str], marker: str) -> list[list[str]]:
    """The data rows (cells stripped) of the first markdown table after the marker line."""
    start = next(i for i, line in enumerate(lines) if line.strip() == marker)
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [row for row in rows[2:]]  # after the header and the separator


def _row_model(row: list[str]) -> str:
    match = re.search(r"\[([^\]]+)\]\(models/([^)]+)\)", row[0])
    assert match and match.group(1) == match.group(2), f"first cell {row[0]!r}: write [name](models/name)"
    return match.group(1)


def _numbers(text: str) -> list[tuple[float, int]]:
    found = []
    for token in NUMBER.findall(text):
        token = token.rstrip(",")
        decimals = len(token.split(".")[1]) if "." in token else 0
        found.append((float(token.replace(",", "")), decimals))
    return found


def cell_problems(written: str, cell: Cell) -> list[str]:
    if cell.exact:
        return [] if written == cell.text else [f"{written!r} is not {cell.text!r}"]
    problems = [f"{word!r} missing" for word in cell.words if word not in written]
    printed = _numbers(written)
    if len(printed) != len(cell.numbers):
        return problems + [f"{len(printed)} numbers where the files give {len(cell.numbers)}"]
    for (value, decimals), (expected, least) in zip(printed, cell.numbers, strict=True):
        if decimals < least:
            problems.append(f"{_fmt(value, decimals)} needs {least} decimals ({_fmt(expected, least)})")
        elif abs(value - expected) > 0.5 * 10 ** -decimals + 1e-9:
            problems.append(f"{_fmt(value, decimals)} is not {expected} rounded to {decimals} decimals")
    return problems


def _row(cells: list[Cell]) -> str:
    return "| " + " | ".join(cell.text for cell in cells) + " |"


def _check_table(marker: str, cells_of) -> None:
    rows = _table_after(README.read_text().splitlines(), marker)
    by_model = {_row_model(row): row for row in rows}
    assert len(by_model) == len(rows), f"a model has two rows in the table after {marker}"
    folders = {model.name: model for model in model_folders()}
    assert set(by_model) == set(folders), (
        f"the table after {marker} lists {sorted(by_model)}, models/ holds {sorted(folders)}; rows the files give:\n"
        + "\n".join(_row(cells_of(folders[name])) for name in sorted(set(folders) - set(by_model))))
    for name, row in by_model.items():
        cells = cells_of(folders[name])
        assert len(row) == len(cells), f"{name}: {len(row)} cells, expected {len(cells)}:\n{_row(cells)}"
        problems = [f"column {i + 1}: {problem}" for i, (written, cell) in enumerate(zip(row, cells, strict=True))
                    for problem in cell_problems(written, cell)]
        assert not problems, (f"README row of {name} disagrees with its files: " + "; ".join(problems)
                              + f"\nthe files give:\n{_row(cells)}")


def test_readme_models_table_matches_the_cards() -> None:
    _check_table(MODELS_MARKER, model_cells)


def test_readme_figures_match_card_measurement_and_report() -> None:
    _check_table(FIGURES_MARKER, figure_cells)


def candidate_cells(row: dict) -> list[Cell]:
    """A row of the candidates table as scripts/backbone_table.py recorded it."""
    low, high = row["ci95"]
    load = row["cpu_load"] * 100
    return [Cell(f"`{row['run']}`", exact=True),
            Cell(f"{row['front_end']}, {row['filters']} channels, seed {row['seed']}",
                 [(row["filters"], 0), (row["seed"], 0)], [row["front_end"]]),
            Cell(f"{_fmt(row['int8'], 3)} ({_fmt(low, 3)}–{_fmt(high, 3)})", [(row["int8"], 3), (low, 3), (high, 3)]),
            Cell(_fmt(row["float"], 3), [(row["float"], 3)]),
            Cell(f"{row['instructions'] / 1e6:.2f} M", [(row["instructions"] / 1e6, 2)]),
            Cell(f"every {row['every_strides']}, {load:.0f}%", [(row["every_strides"], 0), (load, 0)]),
            Cell(f"{row['period_ms']} ms", [(row["period_ms"], 0)])]


def test_readme_candidates_match_the_recorded_comparison() -> None:
    """The backbone-vs-student table: every row is a run scripts/backbone_table.py recorded, to the digit."""
    recorded = {row["run"]: row for row in json.loads(CANDIDATES.read_text())}
    rows = {row[0].strip("`"): row for row in _table_after(README.read_text().splitlines(), CANDIDATES_MARKER)}
    assert set(rows) == set(recorded), (f"the README's candidates {sorted(rows)} are not the recorded "
                                        f"{sorted(recorded)}")
    for name, row in rows.items():
        cells = candidate_cells(recorded[name])
        assert len(row) == len(cells), f"{name}: {len(row)} cells, expected {len(cells)}:\n{_row(cells)}"
        problems = [f"column {i + 1}: {problem}" for i, (written, cell) in enumerate(zip(row, cells, strict=True))
                    for problem in cell_problems(written, cell)]
        assert not problems, f"README candidate {name}: " + "; ".join(problems) + f"\nrecorded:\n{_row(cells)}"


def test_cell_check_catches_a_changed_digit_and_a_rounded_away_one() -> None:
    cell = Cell("", [(0.814, 3), (2466400, 0), (7.75, 2)])
    assert cell_problems("0.814, 2,466,400, 7.75/h", cell) == []
    assert cell_problems("0.815, 2,466,400, 7.75/h", cell)
    assert cell_problems("0.814, 2,466,420, 7.75/h", cell)
    assert cell_problems("0.81, 2,466,400, 7.75/h", cell)  # fewer decimals than the value needs
    assert cell_problems("0.814, 2,466,400", cell)  # a number missing
    assert cell_problems("speech_commands_12 on the M4: 0.814, 2,466,400, 7.75/h", cell) == []
    labels = Cell("silence, unknown, yes, no", exact=True)
    assert cell_problems("silence, unknown, yes, no", labels) == []
    assert cell_problems("silence, unknown, no, yes", labels)


def test_readme_is_short_and_its_links_exist() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_LINES
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def _kws_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|\||[;&|]", line.split(" #")[0]):
                words = shlex.split(part)
                if words and Path(words[0]).name == "kws":
                    commands.append(part.strip())
    return commands


def test_every_kws_command_in_the_readme_parses() -> None:
    from kws.cli import build_parser

    commands = _kws_commands(README.read_text())
    assert len(commands) >= 10
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit as error:
            pytest.fail(f"README command does not parse ({error}): {command}")


if __name__ == "__main__":
    for title, cells_of in (("models", model_cells), ("figures", figure_cells)):
        print(f"{title}:")
        for folder in model_folders():
            print(_row(cells_of(folder)))
    print("candidates:")
    for recorded in json.loads(CANDIDATES.read_text()):
        print(_row(candidate_cells(recorded)))
