"""What a model costs on the board, estimated from the .tflite alone: MACs, Cortex-M4 instructions, time, energy.

Instruction counts per op come from a linear model (per MAC or per element, plus a fixed cost) fitted to
instruction counts measured for TFLM with CMSIS-NN kernels built for Cortex-M4F (deterministic counts, one
inference; the calibration table is in docs/cost_model.md):

    micro_speech tiny_conv 49x40: DEPTHWISE_CONV_2D 320,000 MACs -> 1,461,189; FULLY_CONNECTED 16,000 -> 30,683;
                                  SOFTMAX (4) 2,376; RESHAPE 1,226
    DS-CNN 49x10 (64 ch):         CONV_2D 2,368,000 -> 5,395,674; DEPTHWISE 3x3 288,000 -> 2,245,856;
                                  AVERAGE_POOL_2D (8,000 in) 51,068; MEAN (8,000 in) 1,333,350;
                                  FULLY_CONNECTED 768 -> 2,525; SOFTMAX (12) 2,599
    DS-CNN 49x40 (64 ch):         CONV_2D 9,472,000 -> 21,351,962; DEPTHWISE 1,152,000 -> 9,257,876;
                                  MEAN (32,000 in) 5,321,475

Time = instructions x cycles-per-instruction / clock. The nRF52840 runs from flash at 64 MHz through its
instruction cache; CMSIS-NN inner loops are short and cache-resident, and their loads hit zero-wait-state RAM, so
we assume 1.25 cycles per instruction and state ±20% (a cache-miss-heavy or divide-heavy kernel runs slower).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from kws.config_schema import Board

CPI_UNCERTAINTY = 0.2


@dataclass(frozen=True)
class OpCost:
    op: str
    kind: str  # the op, or for convolutions the CMSIS-NN path it takes (layer_kind)
    macs: int
    patch_elements: int  # im2col: output positions x kernel elements (MACs / output channels); 0 if none
    output_blocks: int  # 1x1 convolution: outputs x ceil(input channels / 16), its inner loop's trips; 0 if none
    input_elements: int
    output_elements: int
    instructions: int
    calibrated: bool  # False: a generic per-element guess, no measurement behind it


@dataclass(frozen=True)
class ModelCost:
    ops: list[OpCost]
    clock_hz: int
    cycles_per_instruction: float

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def instructions(self) -> int:
        return sum(op.instructions for op in self.ops)

    @property
    def inference_us(self) -> float:
        return self.instructions * self.cycles_per_instruction / self.clock_hz * 1e6


def layer_kind(op: str, weights: tuple[int, ...], multiplier: int) -> str:
    """What a layer's cost depends on beyond its MACs: CMSIS-NN runs a 1x1 convolution as a plain matrix product
    and any other through im2col, whose patches cost most when built from one input channel (a first layer: one
    q7-to-q15 copy per few bytes), and a depthwise convolution with a channel multiplier through another kernel."""
    if op == "CONV_2D":  # filter [out_c, kh, kw, in_c]
        if tuple(weights[1:3]) == (1, 1):
            return "CONV_2D 1x1"
        return "CONV_2D one input channel" if weights[3] == 1 else "CONV_2D"
    if op == "DEPTHWISE_CONV_2D" and multiplier > 1:
        return "DEPTHWISE_CONV_2D multiplier"
    return op


@dataclass(frozen=True)
class Rate:
    """Instructions of one layer = per_mac x MACs + per_patch x im2col elements + per_output_block x 1x1 inner-loop
    trips + per_input x input elements + per_output x output elements + fixed."""

    per_mac: float = 0.0
    per_patch: float = 0.0
    per_output_block: float = 0.0
    per_input: float = 0.0
    per_output: float = 0.0
    fixed: float = 0.0

    def instructions(self, op: OpCost) -> int:
        return round(self.per_mac * op.macs + self.per_patch * op.patch_elements
                     + self.per_output_block * op.output_blocks + self.per_input * op.input_elements
                     + self.per_output * op.output_elements + self.fixed)


# Which terms each kind's rate is fitted with (scripts/m4_cost_points.py); a kind not measured gets UNCALIBRATED.
# A convolution through im2col pays for its MACs (two per SIMD instruction) and for building each patch (q7 to
# q15), a first layer's also per output; a 1x1 one per output and per 16 input channels of each output.
RATE_TERMS = {
    "CONV_2D one input channel": ("per_mac", "per_patch", "per_output"), "CONV_2D": ("per_mac", "per_patch"),
    "CONV_2D 1x1": ("per_output", "per_output_block"),
    "DEPTHWISE_CONV_2D": ("per_mac", "fixed"), "DEPTHWISE_CONV_2D multiplier": ("per_mac", "fixed"),
    "FULLY_CONNECTED": ("per_mac", "fixed"), "AVERAGE_POOL_2D": ("per_input", "fixed"),
    "MEAN": ("per_input", "fixed"), "SOFTMAX": ("per_output", "fixed"), "RESHAPE": ("per_input", "fixed"),
}
UNCALIBRATED = Rate(per_input=4.0, fixed=500.0)
RATES_FILE = Path(__file__).with_name("m4_cost_rates.json")


@cache
def measured_rates() -> dict:
    """The fitted rates and the front end's instructions per stride, as scripts/m4_cost_points.py wrote them."""
    return json.loads(RATES_FILE.read_text())


def rate_of(kind: str) -> Rate | None:
    fitted = measured_rates()["rates"].get(kind)
    return Rate(**fitted) if fitted is not None else None


def _instructions(op: OpCost) -> tuple[int, bool]:
    rate = rate_of(op.kind)
    if rate is None:
        return UNCALIBRATED.instructions(dataclasses.replace(op, input_elements=max(op.input_elements,
                                                                                   op.output_elements))), False
    return rate.instructions(op), True


def estimate_model(tflite: bytes, clock_hz: int = 64_000_000, cycles_per_instruction: float = 1.25) -> ModelCost:
    """Per-op MACs and estimated instructions of every op in the model's main subgraph."""
    from tflite_micro.python.tflite_micro.runtime import (
        convert_bytearray_to_object,
        get_builtin_code_from_operator_code,
    )
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = convert_bytearray_to_object(bytearray(tflite))
    subgraph = model.subgraphs[0]
    costs = []
    for operator in subgraph.operators:
        op = names[get_builtin_code_from_operator_code(model.operatorCodes[operator.opcodeIndex])]
        shapes = [tuple(subgraph.tensors[i].shape) if i >= 0 else () for i in operator.inputs]
        output = tuple(subgraph.tensors[operator.outputs[0]].shape)
        macs, multiplier = op_macs(op, shapes, output, operator)
        kind = layer_kind(op, shapes[1] if len(shapes) > 1 else (), multiplier)
        inputs, outputs = int(np.prod(shapes[0])), int(np.prod(output))
        patch = blocks = 0
        if op == "CONV_2D":  # filter [out_c, kh, kw, in_c]
            out_channels, in_channels = int(shapes[1][0]), int(shapes[1][3])
            if kind == "CONV_2D 1x1":
                blocks = outputs * -(-in_channels // 16)
            else:
                patch = macs // out_channels
        layer = OpCost(op, kind, macs, patch, blocks, inputs, outputs, 0, False)
        instructions, calibrated = _instructions(layer)
        costs.append(dataclasses.replace(layer, instructions=instructions, calibrated=calibrated))
    return ModelCost(costs, clock_hz, cycles_per_instruction)


def op_macs(op: str, inputs: list[tuple[int, ...]], output: tuple[int, ...], operator: object) -> tuple[int, int]:
    """Multiply-accumulates of one op (0 for data movement), and the depthwise channel multiplier."""
    if op == "CONV_2D":  # filter [out_c, kh, kw, in_c]; output [n, oh, ow, out_c]
        out_c, kh, kw, in_c = inputs[1]
        return int(np.prod(output) * kh * kw * in_c), 1
    if op == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out_c]
        _, kh, kw, _ = inputs[1]
        multiplier = output[-1] // inputs[0][-1]
        return int(np.prod(output) * kh * kw), multiplier
    if op == "FULLY_CONNECTED":  # weights [out, in]
        out_features, in_features = inputs[1]
        return int(np.prod(output) // out_features * out_features * in_features), 1
    return 0, 1


def frontend_us(board: Board) -> float:
    """Estimated microfrontend time per stride on the board."""
    return measured_rates()["frontend_per_stride"] * board.cycles_per_instruction / board.clock_hz * 1e6


@dataclass(frozen=True)
class Energy:
    inference_uj: float  # one inference
    duty_cycle: float  # CPU busy share (front end every stride + inference every N strides)
    average_mw: float  # active current while busy, idle current otherwise


def energy(board: Board, inference_us: float, stride_ms: float, inference_every_strides: int,
           frontend_stride_us: float | None = None) -> Energy:
    """Energy per inference and average power from the board power model (config [board]); the front end's time
    per stride is the measured default model's unless given."""
    active_w = board.voltage * board.active_ma / 1000
    idle_w = board.voltage * board.idle_ma / 1000
    period_us = stride_ms * 1000 * inference_every_strides
    stride_us = frontend_us(board) if frontend_stride_us is None else frontend_stride_us
    busy_us = inference_us + stride_us * inference_every_strides
    duty = min(1.0, busy_us / period_us)
    return Energy(inference_uj=active_w * inference_us, duty_cycle=duty,
                  average_mw=(duty * active_w + (1 - duty) * idle_w) * 1000)
