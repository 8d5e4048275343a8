"""The problem definition: one TOML file that every command reads.

It names the keywords, the audio front end, the environment to train for (noise, SNR range), the model and the
targets the result must meet on the board. Each section is a dataclass (`kws.config_schema`, with the defaults and
what each key means); loading (`load`, `from_dict`) checks every key and value and names the offending one
(`model.filters`, `augment.snr_db`) in the error, so a typo never silently falls back to a default. `set_values`
edits numbers of a config file in place; `with_overrides` derives a config from another.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from pathlib import Path

from kws.config_schema import Config


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key and the value."""


FRONTEND_KINDS = ("microfrontend", "mlperf_mfcc")
TEACHER_LABEL_ALIASES = {"_silence_": "silence", "_unknown_": "unknown"}
# The names a config may give; the code behind each lives above the config (kws.training.models.ARCHITECTURES,
# kws.frontends.teacher_mfcc.FRONTENDS), which must have exactly these keys (tests/test_config.py), so loading a
# config never imports the stages that read it.
ARCHITECTURE_NAMES = ("tiny_conv", "ds_cnn", "cnn")
TEACHER_FRONTEND_NAMES = ("mlperf_mfcc",)


def load(path: str | Path) -> Config:
    """Reads and validates a config file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    try:
        config = from_dict(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return dataclasses.replace(config, source=path.resolve())


def set_values(path: str | Path, table: str, values: dict[str, int | float]) -> None:
    """Sets numbers in one [table] (or [table.sub]) of a config file in place, keeping every other line (and comments)
    as written.

    A key already in the table gets its value replaced, a missing one is added at the table's end, a missing table
    is appended. The result is checked by reading it back (a table written with dotted keys would fail that).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        parent = re.compile(rf"^\s*\[\s*{re.escape(table.rpartition('.')[0])}\s*\]\s*(#.*)?$")
        after = next((i for i, line in enumerate(lines) if "." in table and parent.match(line)), None)
        if after is None:  # at the end
            lines += ["\n", f"[{table}]\n"]
            start = len(lines) - 1
        else:  # a sub-table right after its parent table's keys
            end = next((i for i in range(after + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
            start = max((i for i in range(after, end) if lines[i].strip()), default=after) + 1
            lines[start:start] = ["\n", f"[{table}]\n"]
            start += 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for key, value in values.items():
        text = repr(value) if isinstance(value, float) else str(int(value))
        name = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)  # a TOML bare key, else quoted
        pattern = re.compile(rf"^(\s*{re.escape(name)}\s*=\s*)[^#\r\n]*?(\s*(#.*)?)(\r?\n)?$")
        for i in range(start + 1, end):
            match = pattern.match(lines[i])
            if match:
                lines[i] = f"{match[1]}{text}{match[2]}{match[4] or ''}"
                break
        else:
            last = max((i for i in range(start, end) if lines[i].strip()), default=start)
            lines.insert(last + 1, f"{name} = {text}\n")
            end += 1
    updated = "".join(lines)
    written = tomllib.loads(updated)
    for part in table.split("."):  # a [recognizer.thresholds] table is nested
        written = written.get(part, {})
    if any(written.get(key) != value for key, value in values.items()):
        raise ConfigError(f"{path}: could not set {table}.{', '.join(values)} (is [{table}] written in another form?)")
    from_dict(tomllib.loads(updated))
    path.write_text(updated, encoding="utf-8")


def from_dict(raw: dict) -> Config:
    """Builds a validated Config from plain data (as parsed from TOML)."""
    config = _build(Config, raw, prefix="")
    _check_values(config)
    return config


def _build(cls: type, raw: object, prefix: str) -> typing.Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(fields))})")
    values = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, f"{prefix}{name}")
    return cls(**values)


def _convert(hint: object, value: object, key: str) -> object:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    origin = typing.get_origin(hint)
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a table, got {value!r}")
        return {_convert(key_type, k, f"{key}.{k}"): _convert(value_type, v, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"'{key}' must have {len(args)} items, got {value!r}")
        return tuple(_convert(arg, item, f"{key}[{i}]") for i, (arg, item) in enumerate(zip(args, value, strict=True)))
    if origin in (typing.Union, types.UnionType):
        # TOML has no null: `X | None` is X when the key is given and the default (None) when it is left out
        present = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(present) != 1:
            raise AssertionError(f"config field {key} has an unsupported type")
        return _convert(present[0], value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return value
    raise AssertionError(f"config field {key} has an unsupported type {hint}")


def _check_values(config: Config) -> None:
    from kws.board import firmware

    def require(ok: bool, key: str, value: object, why: str) -> None:
        if not ok:
            raise ConfigError(f"'{key}' = {value!r}: {why}")

    words = config.keywords.words
    require(len(words) >= 1, "keywords.words", words, "name at least one keyword")
    require(len(set(words)) == len(words), "keywords.words", words, "keywords must be unique")
    for word in words:
        require(word.strip() == word and word != "" and not word.startswith("_"), "keywords.words", word,
                "a keyword is a non-empty word without surrounding spaces or a leading '_'")
        require(word not in ("silence", "unknown"), "keywords.words", word, "'silence' and 'unknown' are reserved")
    overlap = set(words) & set(config.keywords.unknown_words)
    require(not overlap, "keywords.unknown_words", sorted(overlap), "a keyword cannot also be an unknown word")
    max_labels = firmware.constant("lib/kws_core/kws_recognizer.h", "KWS_RECOGNIZER_MAX_LABELS")
    require(len(config.labels) <= max_labels, "keywords.words", words,
            f"at most {max_labels} classes fit the firmware's recognizer")
    for name in ("silence_share", "unknown_share"):
        value = getattr(config.keywords, name)
        require(0.0 <= value <= 5.0, f"keywords.{name}", value, "must be between 0 and 5")
    require(config.audio.sample_rate in (8000, 16000), "audio.sample_rate", config.audio.sample_rate,
            "the board's PDM microphone runs at 16000 (8000 also works)")
    require(250 <= config.audio.clip_ms <= 4000, "audio.clip_ms", config.audio.clip_ms, "must be 250..4000")
    fe = config.frontend
    require(fe.kind in FRONTEND_KINDS, "frontend.kind", fe.kind, f"known front ends: {', '.join(FRONTEND_KINDS)}")
    if fe.kind == "mlperf_mfcc":
        from kws.frontends.mfcc import MfccParams  # light: numpy and ctypes; the C is built only when it runs

        mfcc = MfccParams()
        window_ms, stride_ms = (1000 * n // mfcc.sample_rate for n in (mfcc.window, mfcc.stride))
        require((fe.window_ms, fe.stride_ms, config.audio.sample_rate) == (window_ms, stride_ms, mfcc.sample_rate),
                "frontend.kind", fe.kind, f"the MLPerf MFCCs take {window_ms} ms windows every {stride_ms} ms of "
                f"{mfcc.sample_rate} Hz audio (frontend.window_ms, frontend.stride_ms, audio.sample_rate)")
        require(fe.channels == mfcc.coefficients, "frontend.channels", fe.channels,
                f"the MLPerf MFCCs are {mfcc.coefficients} coefficients per frame (kws.frontends.mfcc's tables)")
    require(0 < fe.stride_ms <= fe.window_ms, "frontend.stride_ms", fe.stride_ms, "must be positive and <= window_ms")
    require(fe.window_ms < config.audio.clip_ms, "frontend.window_ms", fe.window_ms, "must be shorter than the clip")
    require(1 <= fe.channels <= 64, "frontend.channels", fe.channels, "must be 1..64")
    require(0 < fe.lower_band_hz < fe.upper_band_hz <= config.audio.sample_rate / 2, "frontend.upper_band_hz",
            fe.upper_band_hz, "bands must satisfy 0 < lower_band_hz < upper_band_hz <= sample_rate/2")
    require(0.0 <= fe.min_signal_remaining <= 1.0, "frontend.min_signal_remaining", fe.min_signal_remaining,
            "must be 0..1")
    split = config.split
    require(0 < split.validation_percent and split.validation_percent + split.test_percent < 100,
            "split.validation_percent", split.validation_percent, "validation_percent must be positive and "
            "validation_percent + test_percent below 100")
    require(split.test_percent >= 0, "split.test_percent", split.test_percent, "must be 0 or more")
    aug = config.augment
    require(aug.snr_db[0] <= aug.snr_db[1], "augment.snr_db", list(aug.snr_db), "must be [low, high]")
    require(aug.gain_db[0] <= aug.gain_db[1], "augment.gain_db", list(aug.gain_db), "must be [low, high]")
    require(0.5 <= aug.speed[0] <= aug.speed[1] <= 2.0, "augment.speed", list(aug.speed),
            "must be [low, high] within 0.5..2.0")
    require(0.0 <= aug.noise_probability <= 1.0, "augment.noise_probability", aug.noise_probability, "must be 0..1")
    require(0.0 <= aug.reverb_probability <= 1.0, "augment.reverb_probability", aug.reverb_probability, "must be 0..1")
    require(10.0 <= aug.rt60_ms[0] <= aug.rt60_ms[1] <= 3000.0, "augment.rt60_ms", list(aug.rt60_ms),
            "must be [low, high] within 10..3000")
    require(0.0 <= aug.frequency_warp <= 0.3, "augment.frequency_warp", aug.frequency_warp, "must be 0..0.3")
    require(0 <= aug.copies <= 20, "augment.copies", aug.copies, "must be 0..20")
    require(config.model.architecture in ARCHITECTURE_NAMES, "model.architecture", config.model.architecture,
            f"known architectures: {', '.join(ARCHITECTURE_NAMES)}")
    require(config.model.head in ("average", "flatten"), "model.head", config.model.head,
            "must be 'average' or 'flatten'")
    require(config.model.filters >= 1, "model.filters", config.model.filters, "must be positive")
    require(0.0 <= config.model.dropout < 1.0, "model.dropout", config.model.dropout, "must be 0..1")
    require(config.training.epochs >= 1, "training.epochs", config.training.epochs, "must be positive")
    require(0.0 <= config.training.weight_average < 1.0, "training.weight_average", config.training.weight_average,
            "must be 0 (off) or a momentum below 1, such as 0.999")
    require(not (config.training.weight_average and config.training.restore_best), "training.weight_average",
            config.training.weight_average, "needs training.restore_best = false: the average replaces the weights "
            "only after the last epoch")
    require(config.training.batch_size >= 1, "training.batch_size", config.training.batch_size, "must be positive")
    _check_teacher(config, require)
    for name in ("radio_tx_ma", "radio_rx_ma", "radio_ramp_up_us"):
        value = getattr(config.board, name)
        require(value >= 0, f"board.{name}", value, "must be 0 or more")
    rec = config.recognizer
    require(0 <= rec.threshold <= 255, "recognizer.threshold", rec.threshold, "is on the 0..255 score scale")
    for word, value in rec.thresholds.items():
        require(word in words, f"recognizer.thresholds.{word}", value, "names no keyword of keywords.words")
        require(0 <= value <= 255, f"recognizer.thresholds.{word}", value, "is on the 0..255 score scale")
    require(rec.inference_every_strides >= 1, "recognizer.inference_every_strides", rec.inference_every_strides,
            "must be positive")
    require(rec.median_delay_ms > 0, "recognizer.median_delay_ms", rec.median_delay_ms, "must be positive")
    require(rec.false_accepts_per_hour > 0, "recognizer.false_accepts_per_hour", rec.false_accepts_per_hour,
            "must be positive: no stream length can show a rate of zero")
    max_history = firmware.constant("lib/kws_core/kws_recognizer.h", "KWS_RECOGNIZER_MAX_HISTORY")
    require(1 <= rec.minimum_count <= max_history, "recognizer.minimum_count", rec.minimum_count,
            f"must be 1..{max_history} (the firmware recognizer's history)")


def _check_teacher(config: Config, require: typing.Callable[[bool, str, object, str], None]) -> None:
    teacher = config.teacher
    if not teacher.enabled:
        return
    require(teacher.frontend in TEACHER_FRONTEND_NAMES, "teacher.frontend", teacher.frontend,
            f"unknown teacher front end (known: {', '.join(TEACHER_FRONTEND_NAMES)})")
    require(teacher.temperature > 0, "teacher.temperature", teacher.temperature, "must be positive")
    require(0.0 <= teacher.alpha <= 1.0, "teacher.alpha", teacher.alpha, "must be 0..1 (the soft loss's weight)")
    require(teacher.alpha_when_wrong is None or 0.0 <= teacher.alpha_when_wrong <= 1.0, "teacher.alpha_when_wrong",
            teacher.alpha_when_wrong, "must be 0..1 (the soft loss's weight where the teacher is wrong)")
    require(teacher.batch_size >= 1, "teacher.batch_size", teacher.batch_size, "must be positive")
    mapped = [TEACHER_LABEL_ALIASES.get(label, label) for label in teacher.labels]
    require(len(mapped) > 0, "teacher.labels", list(teacher.labels), "name the teacher's outputs in order")
    require(len(set(mapped)) == len(mapped), "teacher.labels", list(teacher.labels), "a class is named twice")
    extra = [label for label, name in zip(teacher.labels, mapped, strict=True) if name not in config.labels]
    require(not extra, "teacher.labels", list(teacher.labels),
            f"the teacher's output '{extra[0] if extra else ''}' is no class of this config "
            f"(classes: {', '.join(config.labels)})")
    missing = [label for label in config.labels if label not in mapped]
    require(not missing, "teacher.labels", list(teacher.labels),
            f"the config's class '{missing[0] if missing else ''}' is no output of the teacher")


def with_overrides(base: Config, overrides: dict) -> Config:
    """The base config with some keys replaced: {section: {key: value}}; the source file stays the base's."""
    raw = base.to_dict()
    for section, values in overrides.items():
        raw[section] = {**raw[section], **values}
    return dataclasses.replace(from_dict(raw), source=base.source)
