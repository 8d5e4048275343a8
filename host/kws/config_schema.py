"""What a config holds: one frozen dataclass per TOML table (`[keywords]`, `[frontend]`, `[recognizer]`, ...) with
its defaults and what each key means, and `Config`, the whole of them with the quantities derived from it (labels,
samples per clip and stride, slices per window).

Read a config with `kws.config.load` (or `from_dict`), which checks every key and value against these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


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
    front end the MLPerf reference model and a backbone pruned from it need), `channels` (10) coefficients per slice;
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
    # nRF52840 CPU running from flash with cache at 64 MHz: the datasheet's LDO figure (the DC/DC one, 3.3 mA at
    # 3 V, plus about 3 mA of board extras), so it holds whichever regulator mode the Arduino core selects
    active_ma: float = 6.3
    idle_ma: float = 1.6  # System ON idle with the PDM microphone running
    cycles_per_instruction: float = 1.25
    # The radio, for the Bluetooth LE estimate (kws.cost.ble): nRF52840 Product Specification, current consumption,
    # "Radio transmitting/receiving", 1 Mbps BLE mode, HFXO, 3 V. LDO figures, as for active_ma (with the DC/DC
    # regulator: 6.40 mA TX, 6.26 mA RX). Whole-chip currents, added on top of idle_ma while the radio is on.
    radio_tx_ma: float = 10.8  # transmitting at 0 dBm (IRADIO_TX3)
    radio_rx_ma: float = 10.1  # receiving (IRADIO_RX1)
    # TXEN/RXEN to READY with fast ramp-up, which mbed OS's Cordio link layer uses on the nRF52840 (product
    # specification, RADIO timing: 40 us; 140 us without); the radio is assumed to draw its TX/RX current meanwhile
    radio_ramp_up_us: float = 40.0


@dataclass(frozen=True)
class Teacher:
    """A pretrained model that labels the training audio with soft targets (knowledge distillation, Hinton et al.
    2015). It only labels data: the board never runs it. `model` empty: no teacher."""

    model: str = ""  # the teacher's .tflite (relative to the config file), float or int8 input
    frontend: str = "mlperf_mfcc"  # its feature function, one of kws.config.TEACHER_FRONTEND_NAMES
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
