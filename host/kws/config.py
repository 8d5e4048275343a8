"""The problem definition: one TOML file that every command reads.

It names the keywords, the audio front end, the environment to train for (noise, SNR range), the model and the
targets the result must meet on the board. Each section is a dataclass; loading checks every key and value and
names the offending one (`model.filters`, `augment.snr_db`) in the error, so a typo never silently falls back to
a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key and the value."""


@dataclass(frozen=True)
class Keywords:
    words: tuple[str, ...] = ("yes", "no")
    silence: bool = True  # add a `silence` class: background noise and quiet
    unknown: bool = True  # add an `unknown` class: other speech
    # Class sizes relative to the average keyword's number of clips (1.0: as many as one keyword has).
    silence_share: float = 1.0
    unknown_share: float = 1.5
    unknown_words: tuple[str, ...] = ()  # words that count as unknown; empty: every non-keyword word in the data


@dataclass(frozen=True)
class Split:
    """How a data source without a split of its own is divided by speaker (percent of its speakers). Speakers keep
    their split when a share changes: the validation speakers are the same at any test_percent."""

    validation_percent: int = 15  # small real sets need a few hundred held-out clips
    test_percent: int = 15  # 0: those speakers train too, and validation is the held-out set


@dataclass(frozen=True)
class Audio:
    sample_rate: int = 16000
    clip_ms: int = 1000


@dataclass(frozen=True)
class Frontend:
    """The board's audio front end. `kind` "microfrontend": the TFLM microfrontend with these parameters
    (micro_speech's values; the same numbers configure the training features and the firmware's FrontendConfig,
    emitted into model_settings.h). `kind` "mlperf_mfcc": the MLPerf Tiny KWS MFCCs (kws_core's fixed-point C, the
    front end the MLPerf reference model and a backbone pruned from it need), `channels` coefficients per slice;
    the microfrontend's other parameters do not apply to it."""

    kind: str = "microfrontend"  # one of FRONTEND_KINDS
    window_ms: int = 30
    stride_ms: int = 20
    channels: int = 40
    lower_band_hz: float = 125.0
    upper_band_hz: float = 7500.0
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05  # 1.0 turns noise reduction off
    pcan: bool = True
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    gain_bits: int = 21
    log: bool = True
    scale_shift: int = 6


@dataclass(frozen=True)
class Augment:
    noise: tuple[str, ...] = ()  # noise files or folders (relative to the config file); empty: generated noise
    noise_probability: float = 0.8
    snr_db: tuple[float, float] = (5.0, 20.0)
    time_shift_ms: int = 100
    gain_db: tuple[float, float] = (-6.0, 6.0)
    speed: tuple[float, float] = (1.0, 1.0)  # speed perturbation factor range (resampling: tempo and pitch together)
    reverb_probability: float = 0.0  # share of copies played in a simulated room
    rt60_ms: tuple[float, float] = (150.0, 700.0)  # that room's reverberation time (60 dB decay)
    copies: int = 2  # augmented copies of each training clip (fixed once, cached, shared by every model)
    time_masks: int = 0  # SpecAugment: masks per example over time slices
    time_mask_slices: int = 5
    frequency_masks: int = 0  # SpecAugment: masks per example over channels
    frequency_mask_channels: int = 4
    # Vocal-tract length perturbation (Jaitly & Hinton 2013) on the features: each training example's frequency
    # axis scaled by a random factor within 1 +- frequency_warp, as another speaker's formants would be
    frequency_warp: float = 0.0


@dataclass(frozen=True)
class Model:
    architecture: str = "tiny_conv"  # one of ARCHITECTURE_NAMES
    filters: int = 8
    blocks: int = 4  # ds_cnn: depthwise-separable blocks; cnn: strided 3x3 convolutions after the first
    kernel: tuple[int, int] = (10, 8)  # first convolution (time, frequency)
    stride: tuple[int, int] = (2, 2)
    dropout: float = 0.2
    # ds_cnn/cnn classifier input: "average" (global average pooling) or "flatten" (keeps the time-frequency
    # layout; its weights cost flash but almost no time: a dense layer is ~1.9 instructions per weight on M4)
    head: str = "average"
    # a pretrained .tflite (relative to the config file) whose weights start training: the MLPerf Tiny reference
    # DS-CNN (kws.training.backbone), narrowed to `filters` channels by least-squares pruning when filters is below its own
    backbone: str = ""


@dataclass(frozen=True)
class Training:
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.002
    patience: int = 6  # early stopping on validation accuracy
    # True: keep the epoch best on validation (and stop early); False: train every epoch and keep the last, so
    # validation stays a held-out set that chose nothing
    restore_best: bool = True
    # > 0: the model keeps an exponential moving average of its weights over the training steps (Polyak averaging),
    # which smooths out the last epochs' noise; needs restore_best = false (the average is only taken at the end)
    weight_average: float = 0.0
    seed: int = 0
    qat: bool = False  # quantization-aware fine-tuning after float training
    qat_epochs: int = 3
    # True: each labelled example weighs N / (classes * its class's count) in the loss, so a keyword with a tenth of
    # another's clips still counts as much (the extra Speech Commands speakers bring yes/no/up/down, not on/off/stop)
    balance_classes: bool = False


@dataclass(frozen=True)
class Recognizer:
    """Posterior smoothing on the device (micro_speech's RecognizeCommands)."""

    average_window_ms: int = 1000
    threshold: int = 200  # on the averaged posterior, 0..255: every label's bar unless `thresholds` names it
    # [recognizer.thresholds]: keyword = its own bar (the firmware recognizer holds one per label); a keyword not
    # named, silence and unknown use `threshold`
    thresholds: dict[str, int] = field(default_factory=dict)
    suppression_ms: int = 1500
    minimum_count: int = 3
    inference_every_strides: int = 1  # run the model every N front-end strides
    false_accepts_per_hour: float = 1.0  # target for `kws calibrate`
    # `kws calibrate` prefers settings whose median detection delay (from the word's end) is at most this
    median_delay_ms: int = 500


@dataclass(frozen=True)
class Targets:
    accuracy: float = 0.9
    flash_bytes: int = 64 * 1024  # model flatbuffer
    arena_bytes: int = 48 * 1024  # TFLM tensor arena
    latency_ms: float = 50.0  # estimated inference time at the board's clock


@dataclass(frozen=True)
class Board:
    """Power model of the Nano 33 BLE Sense for energy estimates (see docs/energy.md for the sources)."""

    clock_hz: int = 64_000_000
    voltage: float = 3.3
    active_ma: float = 6.3  # nRF52840 CPU running from flash with cache, DC/DC on (datasheet: 3.3 mA at 3 V) + mic
    idle_ma: float = 1.6  # System ON idle with the PDM microphone running
    cycles_per_instruction: float = 1.25


@dataclass(frozen=True)
class Teacher:
    """A pretrained model that labels the training audio with soft targets (knowledge distillation, Hinton et al.
    2015). It only labels data: the board never runs it. `model` empty: no teacher."""

    model: str = ""  # the teacher's .tflite (relative to the config file), float or int8 input
    frontend: str = "mlperf_mfcc"  # its feature function, one of TEACHER_FRONTEND_NAMES
    # its outputs in order, by the config's class names; its 'silence'/'unknown' (or '_silence_'/'_unknown_') are the
    # config's silence and unknown classes. Every output must be a config class and every config class an output.
    labels: tuple[str, ...] = ()
    temperature: float = 3.0  # both distributions are softened by it in the soft loss
    alpha: float = 0.8  # loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy(hard label)
    # alpha where the teacher's top class is not the clip's label (how far to trust it on a copy it gets wrong,
    # e.g. a keyword drowned by augmentation that it calls "unknown"); None: alpha everywhere
    alpha_when_wrong: float | None = None
    batch_size: int = 256  # clips per teacher run (memory is bounded by it)
    origin: str = ""  # where the teacher comes from and what it trained on (for the model card)
    license: str = ""  # its licence (for the model card)

    @property
    def enabled(self) -> bool:
        return bool(self.model)


FRONTEND_KINDS = ("microfrontend", "mlperf_mfcc")
TEACHER_LABEL_ALIASES = {"_silence_": "silence", "_unknown_": "unknown"}
# The names a config may give; the code behind each lives above the config (kws.training.models.ARCHITECTURES,
# kws.frontends.teacher_mfcc.FRONTENDS), which must have exactly these keys (tests/test_config.py), so loading a
# config never imports the stages that read it.
ARCHITECTURE_NAMES = ("tiny_conv", "ds_cnn", "cnn")
TEACHER_FRONTEND_NAMES = ("mlperf_mfcc",)


@dataclass(frozen=True)
class Config:
    name: str = "yes_no"
    keywords: Keywords = field(default_factory=Keywords)
    split: Split = field(default_factory=Split)
    audio: Audio = field(default_factory=Audio)
    frontend: Frontend = field(default_factory=Frontend)
    augment: Augment = field(default_factory=Augment)
    model: Model = field(default_factory=Model)
    training: Training = field(default_factory=Training)
    recognizer: Recognizer = field(default_factory=Recognizer)
    targets: Targets = field(default_factory=Targets)
    board: Board = field(default_factory=Board)
    teacher: Teacher = field(default_factory=Teacher)
    source: Path | None = field(default=None, compare=False)  # the file it was read from

    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels in the model's output order: silence, unknown, then the keywords (micro_speech's order)."""
        extra = (("silence",) if self.keywords.silence else ()) + (("unknown",) if self.keywords.unknown else ())
        return extra + self.keywords.words

    @property
    def label_thresholds(self) -> tuple[int, ...]:
        """The recognizer's threshold of each label in output order (KWS_RECOGNIZER_THRESHOLDS)."""
        rec = self.recognizer
        return tuple(rec.thresholds.get(label, rec.threshold) for label in self.labels)

    @property
    def clip_samples(self) -> int:
        return self.audio.sample_rate * self.audio.clip_ms // 1000

    @property
    def stride_samples(self) -> int:
        return self.audio.sample_rate * self.frontend.stride_ms // 1000

    @property
    def window_samples(self) -> int:
        return self.audio.sample_rate * self.frontend.window_ms // 1000

    @property
    def num_slices(self) -> int:
        """Feature slices per clip, as the microfrontend produces them (no padding)."""
        return (self.clip_samples - self.window_samples) // self.stride_samples + 1

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        base = self.source.parent if self.source else Path.cwd()
        return (base / path).resolve()

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def digest(self, *sections: str) -> str:
        """A stable hash of some sections (all when none are named), for cache keys."""
        data = self.to_dict()
        picked = {name: data[name] for name in sections} if sections else data
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


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
        require((fe.window_ms, fe.stride_ms) == (30, 20) and config.audio.sample_rate == 16000, "frontend.kind",
                fe.kind, "the MLPerf MFCCs take 30 ms windows every 20 ms of 16 kHz audio (frontend.window_ms, "
                "frontend.stride_ms, audio.sample_rate)")
        require(1 <= fe.channels <= 40, "frontend.channels", fe.channels, "MFCC coefficients: 1..40 (MLPerf: 10)")
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
