"""m4_measurement.json, what `kws m4` measured for a model: reading it back for the model it belongs to
(`load_measurement`, `inference_instructions` for the virtual board and the report), what the model card keeps of it
(`card_summary`) and what `kws m4` prints (`summary_lines`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kws.cost.m4_image import M4Error

MEASUREMENT_FILE = "m4_measurement.json"
# Share of each inference period the schedule leaves free: the counts are instructions, cycles per instruction
# are assumed (±20%), and PDM and USB interrupts also take their share.
SCHEDULE_HEADROOM = 0.2


def all_identical(measurement: dict) -> bool:
    """Whether every build agreed with the host on every clip and on the stream."""
    records = [measurement, *measurement.get("other_builds", [])]
    return all(record["agreement"]["all_identical"] and record.get("stream", {}).get("all_identical", True)
               for record in records)


def load_measurement(model_dir: Path) -> dict | None:
    """The model's m4_measurement.json if it belongs to the model.tflite beside it; None if there is none."""
    path = model_dir / MEASUREMENT_FILE
    if not path.is_file():
        return None
    measurement = json.loads(path.read_text())
    md5 = hashlib.md5((model_dir / "model.tflite").read_bytes()).hexdigest()
    if measurement["model"]["tflite_md5"] != md5:
        raise M4Error(f"{path} measured another model (md5 {measurement['model']['tflite_md5']}, model.tflite has "
                      f"{md5}): run `kws m4 --model {model_dir} --data DIR --save` again")
    return measurement


def inference_instructions(model_dir: Path, tflite: bytes) -> tuple[int, str]:
    """Instructions per inference on the board: measured by `kws m4` when the model has a measurement of its own,
    else the cost model's estimate; and which of the two it is."""
    measurement = load_measurement(model_dir)
    if measurement is not None:
        return measurement["instructions"]["per_inference"]["median"], "measured (kws m4)"
    from kws.cost.estimate import estimate_model

    return estimate_model(tflite).instructions, "estimated (kws.cost.estimate)"


def card_summary(measurement: dict) -> dict:
    """What the model card keeps of a measurement (the whole of it is m4_measurement.json beside the card)."""
    counts = measurement["instructions"]
    return {"library": f"{measurement['library']['name']} {measurement['library']['version']}",
            "build": f"{measurement['build']['opt']} -mfloat-abi={measurement['build']['float_abi']}, "
                     f"{measurement['build']['compiler']}",
            "clips": measurement["clips"], "agreement": measurement["agreement"],
            "instructions_per_inference": counts["per_inference"]["median"],
            "instructions_per_frontend_stride": counts["per_frontend_stride"]["mean"],
            "schedule": counts["schedule"], "memory": measurement["memory"],
            **({"stream": {key: measurement["stream"][key] for key in
                           ("seconds", "inferences", "detections", "all_identical")}} if "stream" in measurement else {}),
            **({"other_builds": [{"float_abi": build["float_abi"], "all_identical": build["agreement"]["all_identical"]
                                  and build.get("stream", {}).get("all_identical", True)}
                                 for build in measurement["other_builds"]]} if "other_builds" in measurement else {})}


def summary_lines(measurement: dict, clip_source: str | None = None) -> list[str]:
    """What `kws m4` prints; `clip_source` names the clips as the user typed them (the measurement records them
    repository-relative)."""
    agree, counts = measurement["agreement"], measurement["instructions"]
    sched = counts["schedule"]
    lines = [
        f"{measurement['model']['name']} on {measurement['library']['name']} {measurement['library']['version']} "
        f"({measurement['build']['opt']}, -mfloat-abi={measurement['build']['float_abi']}), "
        f"{agree['clips']} clips of {clip_source or measurement['clips']['source']}",
        f"  identical to the host: features {agree['features_identical']}/{agree['clips']}, int8 outputs "
        f"{agree['outputs_identical']}/{agree['clips']}, top-1 {agree['top1_identical']}/{agree['clips']} "
        f"(largest output difference {agree['max_output_difference']})",
        f"  instructions per inference {counts['per_inference']['median']:,} (estimate "
        f"{counts['per_inference']['estimated']:,}); per 20 ms front-end stride of a continuous stream "
        f"{counts['per_frontend_stride']['mean']:,} (max {counts['per_frontend_stride']['max']:,})",
        f"  schedule: inference every {sched['inference_every_strides']} strides loads the CPU "
        f"{sched['load']:.0%} at {sched['cycles_per_instruction']} cycles/instruction (headroom {sched['headroom']:.0%})"
        + ("" if sched["headroom"] >= SCHEDULE_HEADROOM else
           f"; too little: set recognizer.inference_every_strides = {sched['recommended_every_strides']}, the most "
           f"frequent with {SCHEDULE_HEADROOM:.0%} headroom"),
        "  layer                 MACs   instructions  per MAC  estimate",
    ]
    for layer in counts["layers"]:
        per_mac = f"{layer['instructions_per_mac']:.2f}" if layer["instructions_per_mac"] else "-"
        lines.append(f"  {layer['op']:<18} {layer['macs']:>9,} {layer['instructions']:>13,} {per_mac:>8} "
                     f"{layer['estimated']:>9,}")
    memory = measurement["memory"]
    lines.append(f"  arena used {memory['arena_used_bytes']:,} of {memory['arena_bytes']:,} B; front-end heap "
                 f"{memory['frontend_heap_bytes']:,} B; stack high-water {memory['stack_bytes']:,} B")
    for record in [measurement, *measurement.get("other_builds", [])]:
        float_abi = record.get("float_abi") or record["build"]["float_abi"]
        if record is not measurement:
            agree = record["agreement"]
            lines.append(f"  -mfloat-abi={float_abi}: identical to the host: features {agree['features_identical']}/"
                         f"{agree['clips']}, int8 outputs {agree['outputs_identical']}/{agree['clips']}; "
                         f"{record['instructions_per_inference']:,} instructions per inference")
        if "stream" in record:
            lines.append(stream_line(record["stream"], float_abi))
    return lines


def stream_line(stream: dict, float_abi: str) -> str:
    """One line on a stream's agreement."""
    return (f"  stream ({float_abi}): {stream['seconds']:g} s, {stream['strides']} strides; inferences "
            f"{stream['outputs_identical']}/{stream['inferences']} identical (host {stream['host_inferences']}); "
            f"detections {stream['detections']} (host {stream['host_detections']}) "
            f"{'identical' if stream['detections_identical'] else 'DIFFERENT'}; host clock behind by "
            f"{stream['host_clock_behind_ms']} ms; "
            + ("ALL IDENTICAL" if stream["all_identical"] else "NOT identical"))
