"""How `kws report` shows what it measured: report.md and the plots, written from the metrics dict that
`kws.evaluation.report` computes (and saves as metrics.json), so the page says nothing metrics.json does not hold.

Entry points: `markdown` (the whole page), `plots` (the PNGs, drawn by `kws.evaluation.plots`).
"""

from __future__ import annotations

from pathlib import Path

from kws.common.defaults import minutes_to_resolve
from kws.evaluation.evaluate import format_confusion


def plots(metrics: dict, out: Path) -> list[str]:
    """Writes the PNGs; returns their file names."""
    from kws.evaluation import plots as draw

    acc, noise, stream, cost = metrics["accuracy"], metrics["noise"], metrics["streaming"], metrics["cost"]
    data_note = f"{metrics['data']['split']} split, {acc['int8']['clips']} clips"
    draw.confusion(acc["int8"], f"int8 confusion ({data_note})\naccuracy {acc['int8']['accuracy']}",
                   out / "confusion.png")
    draw.accuracy_vs_snr(noise["curves"], f"int8 accuracy vs SNR ({noise['clips']} speech clips per point, "
                         "95% CI)", out / "accuracy_vs_snr.png")
    operating = stream["operating"]
    draw.det_curve(stream["det"], {**operating, "threshold": stream["setting"]["threshold"]}, operating["hours"],
                   f"DET: threshold sweep over {operating['hours'] * 60:.0f} min of streams, "
                   f"{operating['keywords']} keywords", out / "det.png")
    draw.det_per_keyword(stream["per_keyword_det"], operating["hours"],
                         f"DET per keyword (each alone; window {stream['setting']['average_window_ms']} ms)",
                         out / "det_per_keyword.png")
    measured = cost.get("measured") or {}
    on_board = measured.get("timing") == "dwt"
    stages = [{"name": f"{name} x{row['count']}", "estimated_us": row["us"], "uncertainty": cost["uncertainty"],
               "measured_us": None} for name, row in cost["by_op"].items()]
    stages.append({"name": "model (total)", "estimated_us": cost["inference_us"], "uncertainty": cost["uncertainty"],
                   "measured_us": measured.get("inference_us_p50") if on_board else None})
    stages.append({"name": f"front end x{cost['inference_every_strides']} strides",
                   "estimated_us": cost["frontend_us_per_stride"] * cost["inference_every_strides"],
                   "uncertainty": cost["uncertainty"],
                   "measured_us": measured["frontend_us_per_stride"] * cost["inference_every_strides"]
                   if on_board and measured.get("frontend_us_per_stride") is not None else None})
    draw.latency(stages, cost["period_ms"], f"time per inference period ({cost['period_ms']} ms) at "
                 f"{cost['clock_hz'] / 1e6:.0f} MHz, CPI {cost['cycles_per_instruction']}", out / "latency.png")
    return ["confusion.png", "accuracy_vs_snr.png", "det.png", "det_per_keyword.png", "latency.png"]


def _ci(interval: list[float] | None) -> str:
    return f"{interval[0]:.3f}–{interval[1]:.3f}" if interval else "n/a"


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ble_line(ble: dict) -> str:
    """The Bluetooth LE estimate (kws.cost.ble.shipped_schedule) in one paragraph, at both ends of the connection
    interval the board asks for."""
    fast, slow = ble["connection_interval_ms"]
    idle_fast, idle_slow = ble["connected_idle_mw"]
    mean_fast, mean_slow = ble["latency_mean_ms"]
    worst_fast, worst_slow = ble["latency_worst_ms"]
    return (f"Bluetooth LE, if the firmware's peripheral is on (an estimate from nRF52840 datasheet currents, not "
            f"measured; docs/energy.md, *Bluetooth LE*): advertising every {ble['advertising_interval_ms']} ms adds "
            f"{ble['advertising_mw']} mW ({ble['scan_response_uj']} µJ more per scan response, only when an active "
            f"scanner asks); connected and idle, {idle_fast} mW at a {fast} ms connection interval, {idle_slow} mW "
            f"at {slow} ms (the central picks; the stats read every {ble['stats_every_s']:g} s included); "
            f"{ble['notification_uj']} µJ per detection notified. A notification waits for the next connection "
            f"event: +{mean_fast:g}–{mean_slow:g} ms latency on average, +{worst_fast:g}–{worst_slow:g} ms at worst.")


def streaming_evidence(stream: dict, op: dict, thresholds: dict[str, int]) -> list[str]:
    """report.md's per-keyword evidence: FRR and delay per keyword, false accepts by cause, what the averaging window
    costs in delay, and how kws calibrate chose the setting (calibration beside held-out streams)."""
    lines = ["### Per keyword", "", "Delay: detection time minus the end of the word (median / 90th percentile over "
             "the keyword's hits).", "", "| keyword | threshold | spoken | detected | FRR | delay median / p90 (ms) |",
             "|---|---|---|---|---|---|"]
    for word, row in op["per_keyword"].items():
        lines.append(f"| {word} | {thresholds.get(word, stream['setting']['threshold'])} | {row['inserted']} | "
                     f"{row['detected']} | {_fmt(row['frr'])} | {_fmt(row['delay_ms_median'], 0)} / "
                     f"{_fmt(row['delay_ms_p90'], 0)} |")
    lines += ["", "![DET per keyword](det_per_keyword.png)", "", "False accepts by cause (what was heard -> the "
              "keyword detected; *noise*: no word near):", "", "| stream | heard | detected | count |",
              "|---|---|---|---|"]
    causes = [("non-keyword", c) for c in op["false_accepts_by_cause"]] + [
        ("keyword", c) for c in op["keyword_stream_false_accepts"]["by_cause"]]
    lines += [f"| {name} | {c['heard']} | {c['detected']} | {c['count']} |" for name, c in causes[:20]] or ["| - | | | |"]
    lines += ["", f"What the averaging window costs: the configured thresholds at each window "
              f"(configured: {stream['setting']['average_window_ms']} ms; thresholds not refitted).", "",
              "| window (ms) | median delay (ms) | FRR | FA/h |", "|---|---|---|---|"]
    lines += [f"| {r['average_window_ms']} | {_fmt(r['delay_ms_median'], 0)} | {_fmt(r['frr'])} | "
              f"{_fmt(r['fa_per_hour'])} |" for r in stream["window_cost"]]
    calibration = stream.get("calibration")
    if calibration and "heldout" in calibration:
        lines += ["", "### How the setting was chosen (kws calibrate)", "",
                  f"`{calibration.get('command') or 'kws calibrate'}`: fitted on calibration streams, then replayed on "
                  f"held-out streams of other {calibration['halves']['by']} (split {calibration['split']}). A gap "
                  "between the two columns is overfitting.", "",
                  "| setting | calibration FA/h | FRR | median delay | held-out FA/h | FRR | median delay |",
                  "|---|---|---|---|---|---|---|"]
        rows = [("chosen", calibration), ("before calibration", calibration["previous"])]
        rows += [(f"fitted for {t} FA/h", entry) for t, entry in calibration["at_targets"].items()]
        rows += [(f"best at {w} ms window (refitted)", entry) for w, entry in calibration["window_cost"].items()]
        for name, entry in rows:
            cal, held = entry["calibration"], entry["heldout"]
            lines.append(f"| {name} | {_fmt(cal['fa_per_hour'])} | {_fmt(cal['frr'])} | "
                         f"{_fmt(cal['delay_ms']['median'], 0)} | {_fmt(held['fa_per_hour'])} | {_fmt(held['frr'])} | "
                         f"{_fmt(held['delay_ms']['median'], 0)} |")
    else:
        lines += ["", "The recognizer is **not calibrated** with held-out checking: run `kws calibrate` "
                  "(it fits per-keyword thresholds and reports them on held-out streams)."]
    return lines + [""]


def markdown(m: dict) -> str:
    """report.md: a summary table first, then one section per measurement, each saying what data it used."""
    model, acc, noise, stream, cost, memory = (m["model"], m["accuracy"], m["noise"], m["streaming"], m["cost"],
                                               m["memory"])
    int8 = acc["int8"]
    lines = [f"# Model report: {model['name']} ({model['model_id']})", "",
             f"Generated {m['generated']['at']} by `{m['generated']['command'] or 'kws report'}`; int8 runtime "
             f"`{m['generated']['backend']}` (bit-identical to TFLM). Data: {', '.join(m['data']['sources'])}, "
             f"split **{m['data']['split']}** ({', '.join(m['data']['splits'])}): {m['data']['clips']} clips "
             f"({', '.join(f'{k} {v}' for k, v in m['data']['per_class'].items())}). All numbers are in "
             "metrics.json.", "", "## Summary", "", "| what | measured | target | met |", "|---|---|---|---|"]
    for row in m["targets"]:
        met = row.get("note") or {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
        lines.append(f"| {row['what']} | {_fmt(row['measured'])} | {_fmt(row['target'])} | {met} |")
    op = stream["operating"]
    lines += ["", f"Streaming at the configured recognizer: false-reject rate {_fmt(op['frr'])} "
              f"({op['missed']} of {op['keywords']} keywords missed, 95% CI {_ci(op['frr_ci95'])}), "
              f"{op['false_accepts']} false accepts in {op['hours'] * 60:.1f} min of non-keyword speech and noise "
              f"({_fmt(op['fa_per_hour'])}/h, 95% CI {_ci(op['fa_per_hour_ci95'])}).", ""]

    lines += ["## 1. Accuracy (clean clips)", "",
              f"{int8['clips']} clips of the {m['data']['split']} split; each clip's 95% interval is Wilson's. "
              "The int8 figure is the board's arithmetic (the config's front end in the firmware's C, its int8 scaling, the int8 model).",
              "", "| model | accuracy | 95% CI | clips |", "|---|---|---|---|",
              f"| int8 ({acc['int8_runtime']}) | {_fmt(int8['accuracy'], 4)} | {_ci(int8['ci95'])} | {int8['clips']} |"]
    if "float" in acc:
        flt = acc["float"]
        lines.append(f"| float (model.keras) | {_fmt(flt['accuracy'], 4)} | {_ci(flt['ci95'])} | {flt['clips']} |")
        lines += ["", f"int8 minus float: {acc['int8_minus_float']:+.4f}."]
    lines += ["", "| class | clips | int8 accuracy | 95% CI |" + (" float accuracy |" if "float" in acc else ""),
              "|---|---|---|---|" + ("---|" if "float" in acc else "")]
    for label, row in int8["per_class"].items():
        extra = f" {_fmt(acc['float']['per_class'][label]['accuracy'], 4)} |" if "float" in acc else ""
        lines.append(f"| {label} | {row['clips']} | {_fmt(row['accuracy'], 4)} | {_ci(row['ci95'])} |{extra}")
    lines += ["", "Confusion (int8; rows: true class, columns: predicted):", "", "```", format_confusion(int8), "```",
              "", "![confusion](confusion.png)", ""]

    tn = m["training_noise"]
    lines += ["## 2. Noise robustness", "",
              f"The {noise['clips']} speech clips of the split (keywords and unknown words; silence has no SNR: "
              f"{', '.join(f'{k} {v}' for k, v in noise['per_class'].items())}) re-mixed with each noise at each SNR "
              "(`augment.mix_at_snr`: clip RMS over noise RMS, one fixed crop per clip and noise), then the board's "
              "features and the int8 model. Each point is int8 accuracy over all of them. A --noise argument is one "
              "source (a folder: all its WAVs); *unseen* marks --unseen-noise sources, never used in training.", "",
              f"Training noise: {tn['kind']}; config augment.noise {tn['config_augment_noise'] or '[]'}; "
              f"background-noise folders in the training data {tn['data_sources_with_background_noise'] or 'none'}; "
              f"training SNR {tn['snr_db'][0]:g}–{tn['snr_db'][1]:g} dB with probability {tn['noise_probability']}.",
              "", "| noise | " + " | ".join("clean" if s is None else f"{s:g} dB" for s in noise["snr_db"]) + " |",
              "|---|" + "---|" * len(noise["snr_db"])]
    for curve in noise["curves"]:
        name = f"{curve['name']} (unseen)" if curve["unseen"] else curve["name"]
        lines.append(f"| {name} | " + " | ".join(_fmt(p["accuracy"]) for p in curve["points"]) + " |")
    lines += ["", "![accuracy vs SNR](accuracy_vs_snr.png)", ""]

    lines += ["## 3. Streaming", "",
              "Long streams built from the split's clips: each clip inserted whole into continuous background noise "
              f"with random gaps of {stream['gap_s'][0]}–{stream['gap_s'][1]} s, run stride by stride through the "
              "host mirror of the firmware loop (streaming front end, int8 window, model every "
              f"{stream['inference_every_strides']} stride(s)), and the firmware's own recognizer (C) over the "
              "scores. A detection is a hit when it names a keyword spoken between the word's start and "
              f"{stream['tolerance_ms']} ms after its end (word = voiced part of the clip); every other detection is "
              "a false accept.", "", "| stream | minutes | SNR (dB) | words inserted | distinct clips | background |",
              "|---|---|---|---|---|---|"]
    for s in stream["streams"]:
        lines.append(f"| {s['name']} | {s['minutes']} | {_fmt(s['snr_db'], 1)} | {s['events']} | "
                     f"{s['distinct_clips']} | {', '.join(s['background']) or 'none (clean)'} |")
    setting = stream["setting"]
    thresholds = dict(zip(model["labels"], setting["thresholds"], strict=True)) if setting.get("thresholds") else {}
    per_keyword = ", ".join(f"{k} {t}" for k, t in thresholds.items() if k in op["per_keyword"])
    if stream.get("other_words"):
        lines += ["", f"The non-keyword stream also holds {stream['other_word_clips']} clips of other words from "
                  f"{', '.join(stream['other_words'])} (the split's speakers only)."]
    lines += ["", f"Configured recognizer: thresholds {per_keyword or setting['threshold']} (others "
              f"{setting['threshold']}), average window "
              f"{setting['average_window_ms']} ms, suppression {setting['suppression_ms']} ms, minimum count "
              f"{setting['minimum_count']}.", "",
              "| stream | keywords | missed | FRR (95% CI) | false accepts | FA/h (95% CI) | kinds | delay median / p90 (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, row in stream["per_stream"].items():
        delay = row["delay_ms"]
        lines.append(f"| {name} | {row['keywords']} | {row['missed']} | {_fmt(row['frr'])} ({_ci(row['frr_ci95'])}) | "
                     f"{row['false_accepts']} | {_fmt(row['fa_per_hour'])} ({_ci(row['fa_per_hour_ci95'])}) | "
                     f"{', '.join(f'{k} {v}' for k, v in row['false_accepts_by_kind'].items()) or '-'} | {_fmt(delay['median'], 0)} / {_fmt(delay['p90'], 0)} |")
    own = op["keyword_stream_false_accepts"]
    lines += ["", f"**Operating point**: false-reject rate {_fmt(op['frr'])} ({_ci(op['frr_ci95'])}) on the keyword "
              f"stream, where detecting the wrong keyword counts as a miss; {_fmt(op['fa_per_hour'])} false accepts "
              f"per hour ({_ci(op['fa_per_hour_ci95'])}) on the non-keyword stream (other speech and noise, "
              f"{op['hours'] * 60:.1f} min), caused by {op['false_accept_clips']} of its {op['distinct_clips']} "
              "distinct clips (each is replayed many times, so the interval is the wider of the exact Poisson one and "
              "a bootstrap over the clips). The keyword stream's own false accepts: "
              f"{own['count']} "
              f"({_fmt(own['per_keyword'])} per keyword spoken"
              + (f"; {', '.join(f'{k} {v}' for k, v in own['by_kind'].items())}" if own["by_kind"] else "") + ").",
              "", "Per keyword: " + ", ".join(f"{k} {v['detected']}/{v['inserted']}"
                                             for k, v in op["per_keyword"].items()) + " detected.", "",
              f"Detection delay is detection time minus the end of the word, over the {op['delay_ms']['hits']} hits. "
              f"FA/h resolution: one false accept in these {op['hours'] * 60:.1f} min of non-keyword stream is "
              f"{1 / op['hours']:.1f}/h; showing the target ({stream['fa_per_hour_target']}/h) met takes at least "
              f"{minutes_to_resolve(stream['fa_per_hour_target'])} min (--stream-minutes).", "", "![DET curve](det.png)", ""]
    lines += streaming_evidence(stream, op, thresholds)

    measured = cost.get("measured")
    if cost["source"] == "measured":
        m4 = cost["m4"]
        agree = m4["agreement"]
        lines += ["## 4. Device cost (measured on a Cortex-M4)", "",
                  f"Executed instructions of the firmware's own front end and model runner with {m4['library']} "
                  f"({m4['build']}) under QEMU (`kws m4`, m4_measurement.json), {agree['clips']} clips of "
                  f"{m4['clips']['source']}: features and int8 outputs identical to the host's on "
                  f"{agree['outputs_identical']}/{agree['clips']}. Time at {cost['clock_hz'] / 1e6:.0f} MHz assuming "
                  f"{cost['cycles_per_instruction']} cycles per instruction, ±{cost['uncertainty']:.0%} (QEMU "
                  "counts instructions, not cycles). The estimate from the .tflite alone (`kws.cost.estimate`) is beside each "
                  "layer.", ""]
    else:
        errors = ", ".join(f"{kind} {error:.0%}" for kind, error in cost["estimate_error"].items())
        lines += ["## 4. Device cost (estimated)", "",
                  f"From the .tflite alone (`kws.cost.estimate`): instructions per layer from rates fitted to counts of the "
                  f"pinned TFLM library on a Cortex-M4 (docs/cost_model.md; largest error on a candidate left out "
                  f"of the fit: {errors}); time at {cost['clock_hz'] / 1e6:.0f} MHz assuming "
                  f"{cost['cycles_per_instruction']} cycles per instruction, ±{cost['uncertainty']:.0%}. "
                  f"`kws m4` measures the model itself.", ""]
    lines += ["| op | MACs | instructions | estimate | µs | calibrated |", "|---|---|---|---|---|---|"]
    for row in cost["ops"]:
        lines.append(f"| {row['op']} | {row['macs']:,} | {row['instructions']:,} | {row['estimated']:,} | {row['us']} | "
                     f"{'yes' if row['calibrated'] else 'no (generic guess)'} |")
    lines += [f"| **total** | {cost['macs']:,} | {cost['instructions']:,} | {cost['estimated_instructions']:,} | "
              f"{cost['inference_us']} | |", "",
              f"Front end: {cost['frontend_us_per_stride']} µs per stride; the model runs "
              f"every {cost['inference_every_strides']} stride(s) ({cost['period_ms']} ms). CPU duty cycle "
              f"{cost['duty_cycle']:.1%}; {cost['inference_uj']} µJ per inference; average power "
              f"{cost['average_mw']} mW (board model: {cost['board']['voltage']} V, {cost['board']['active_ma']} mA "
              f"active, {cost['board']['idle_ma']} mA idle; docs/energy.md).", ""]
    if cost.get("ble"):
        lines += [_ble_line(cost["ble"]), ""]
    if measured:
        lines += [f"Measured by `kws bench` (timing `{measured['timing']}`"
                  + (", host wall-clock: says nothing about the M4" if measured["timing"] == "host" else "")
                  + f", {measured['clips']} clips): inference p50 {measured['inference_us_p50']} µs "
                  f"(estimated {cost['inference_us']} µs), front end p50 per clip "
                  f"{measured['frontend_us_p50_per_clip']} µs = {measured['frontend_us_per_stride']} µs per stride "
                  f"(estimated {cost['frontend_us_per_stride']} µs).", ""]
    if measured and measured.get("power"):  # `kws bench --power`: measured energy beside this estimate
        from kws.device import power

        lines.append(power.markdown(measured["power"], power.compare(measured["power"], cost["inference_uj"],
                                                                      cost["average_mw"])))
    lines += ["![latency](latency.png)", ""]

    lines += ["## 5. Memory", "",
              f"Model parts are exact; the rest are estimates (±{memory['estimate_uncertainty']:.0%}; see "
              "`kws/memory.py` for the basis) until `pio run` reports the real totals.", "",
              "| flash | bytes | |", "|---|---|---|"]
    for part in memory["flash"]["parts"]:
        lines.append(f"| {part['part']} | {part['bytes']:,} | {'estimate' if part['estimate'] else 'exact'} |")
    flash, ram = memory["flash"], memory["ram"]
    lines += [f"| **total** | {flash['total_bytes']:,} | {flash['board_share']:.0%} of {flash['board_bytes']:,} |",
              "", "| RAM | bytes | |", "|---|---|---|"]
    for part in ram["parts"]:
        lines.append(f"| {part['part']} | {part['bytes']:,} | {'estimate' if part['estimate'] else 'exact'} |")
    lines += [f"| **total** | {ram['total_bytes']:,} | {ram['board_share']:.0%} of {ram['board_bytes']:,} |", ""]
    return "\n".join(lines)
