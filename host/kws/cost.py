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

from dataclasses import dataclass

import numpy as np

from kws.config import Board

# The TFLM microfrontend (30 ms window, 40 channels) per 20 ms stride, measured the same way.
FRONTEND_INSTRUCTIONS_PER_STRIDE = 107_300
CPI_UNCERTAINTY = 0.2


@dataclass(frozen=True)
class OpCost:
    op: str
    macs: int
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

    def by_op(self) -> dict[str, dict[str, int]]:
        """MACs and instructions summed per op type."""
        table: dict[str, dict[str, int]] = {}
        for op in self.ops:
            row = table.setdefault(op.op, {"count": 0, "macs": 0, "instructions": 0})
            row["count"] += 1
            row["macs"] += op.macs
            row["instructions"] += op.instructions
        return table


def _instructions(op: str, macs: int, input_elements: int, output_elements: int, channel_multiplier: int) -> tuple[int, bool]:
    """The fitted linear model for one op (see the module docstring for the points it was fitted to)."""
    if op == "CONV_2D":
        return round(2.26 * macs + 500), True
    if op == "DEPTHWISE_CONV_2D":
        # A depthwise conv that multiplies one input channel into many (micro_speech's first layer) runs CMSIS-NN's
        # faster path; the 3x3 one-to-one case pays more per MAC.
        return round((4.57 if channel_multiplier > 1 else 7.9) * macs + 500), True
    if op == "FULLY_CONNECTED":
        return round(1.89 * macs + 1000), True
    if op == "AVERAGE_POOL_2D":
        return round(6.38 * input_elements), True
    if op == "MEAN":
        return round(166.5 * input_elements), True
    if op == "SOFTMAX":
        return round(2200 + 33 * output_elements), True
    if op in ("RESHAPE", "SQUEEZE"):
        return 1226, True
    return round(4 * max(input_elements, output_elements) + 500), False


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
        instructions, calibrated = _instructions(op, macs, int(np.prod(shapes[0])), int(np.prod(output)), multiplier)
        costs.append(OpCost(op, macs, instructions, calibrated))
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
    return FRONTEND_INSTRUCTIONS_PER_STRIDE * board.cycles_per_instruction / board.clock_hz * 1e6


@dataclass(frozen=True)
class Energy:
    inference_uj: float  # one inference
    duty_cycle: float  # CPU busy share (front end every stride + inference every N strides)
    average_mw: float  # active current while busy, idle current otherwise


def energy(board: Board, inference_us: float, stride_ms: float, inference_every_strides: int) -> Energy:
    """Energy per inference and average power from the board power model (config [board])."""
    active_w = board.voltage * board.active_ma / 1000
    idle_w = board.voltage * board.idle_ma / 1000
    period_us = stride_ms * 1000 * inference_every_strides
    busy_us = inference_us + frontend_us(board) * inference_every_strides
    duty = min(1.0, busy_us / period_us)
    return Energy(inference_uj=active_w * inference_us, duty_cycle=duty,
                  average_mw=(duty * active_w + (1 - duty) * idle_w) * 1000)
