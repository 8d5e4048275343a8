"""The report's figures (matplotlib with the Agg backend, so they render without a display).

Each function takes plain numbers, as metrics.json holds them, and writes one PNG; titles say what data and how
many samples are behind the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot, imported only when a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: object, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    _pyplot().close(figure)


def confusion(result: dict, title: str, path: Path) -> None:
    """A confusion matrix from evaluate.confusion: counts, coloured by each true class's share."""
    plt = _pyplot()
    matrix, labels = np.array(result["confusion"]), result["labels"]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.0 * len(labels) + 2.5
    figure, axes = plt.subplots(figsize=(size, size - 0.5))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if shares[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    axes.set_title(title, fontsize=10)
    _save(figure, path)


def histograms(values: dict[str, list[float]], unit: str, title: str, path: Path) -> None:
    """One histogram per named series, side by side (e.g. per-stage latencies of a benchmark)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(values), figsize=(4 * len(values), 3), squeeze=False)
    for axis, (name, series) in zip(axes[0], values.items(), strict=True):
        axis.hist(series, bins=30)
        axis.set_title(name)
        axis.set_xlabel(unit)
        axis.set_ylabel("count")
    figure.suptitle(title)
    _save(figure, path)


def accuracy_vs_snr(curves: list[dict], title: str, path: Path) -> None:
    """Accuracy (with its 95% interval) against SNR, one line per noise; unseen noises dashed.

    curves: {"name", "unseen", "points": [{"snr_db": float | None (clean), "accuracy", "ci95"}]}.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    snrs = sorted({p["snr_db"] for c in curves for p in c["points"] if p["snr_db"] is not None}, reverse=True)
    clean_x = (snrs[0] + 10) if snrs else 0  # "clean" drawn to the left of the highest SNR
    for curve in curves:
        xs = [clean_x if p["snr_db"] is None else p["snr_db"] for p in curve["points"]]
        ys = [p["accuracy"] for p in curve["points"]]
        low = [p["accuracy"] - p["ci95"][0] for p in curve["points"]]
        high = [p["ci95"][1] - p["accuracy"] for p in curve["points"]]
        name = f"{curve['name']} (unseen)" if curve["unseen"] else curve["name"]
        axes.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, linestyle="--" if curve["unseen"] else "-",
                      label=name)
    axes.set_xticks([clean_x, *snrs], ["clean", *(f"{s:g}" for s in snrs)])
    axes.invert_xaxis()
    axes.set_xlabel("SNR (dB)")
    axes.set_ylabel("int8 accuracy")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    _save(figure, path)


def det_curve(points: list[dict], operating: dict, hours: float, title: str, path: Path) -> None:
    """False-reject rate against false accepts per hour (log x) over a threshold sweep.

    points: {"threshold", "fa_per_hour", "frr"}; operating: the configured setting's point. Zero false accepts
    cannot sit on a log axis: such points are drawn at half a false accept over the stream hours and marked so.
    """
    plt = _pyplot()
    floor = 0.5 / hours
    figure, axes = plt.subplots(figsize=(7, 4.5))
    xs = [max(p["fa_per_hour"], floor) for p in points]
    axes.plot(xs, [p["frr"] for p in points], marker=".", label="threshold sweep")
    for p, x in zip(points, xs, strict=True):
        if p["threshold"] % 40 == 0:
            axes.annotate(str(p["threshold"]), (x, p["frr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.plot([max(operating["fa_per_hour"], floor)], [operating["frr"]], "r*", markersize=12,
              label=f"configured (threshold {operating['threshold']})")
    _det_axes(axes, floor, "false accepts per hour", "false-reject rate", title, {"fontsize": 8})
    _save(figure, path)


def _det_axes(axes: object, floor: float, xlabel: str, ylabel: str, title: str, legend: dict) -> None:
    """A DET plot's axes: log false accepts per hour (zero drawn at `floor`), false-reject rate 0..1."""
    axes.axvline(floor, color="grey", linestyle=":", label=f"0 false accepts (drawn at {floor:.2g}/h)")
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3, which="both")
    axes.legend(**legend)
    axes.set_title(title, fontsize=10)


def det_per_keyword(curves: dict[str, list[dict]], hours: float, title: str, path: Path) -> None:
    """One DET curve per keyword (its threshold swept alone): false-reject rate against the false accepts per hour
    it causes. curves: keyword -> [{"threshold", "fa_per_hour", "frr"}]; zero false accepts drawn as in det_curve."""
    plt = _pyplot()
    floor = 0.5 / hours
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for word, points in curves.items():
        points = [p for p in points if p["frr"] is not None and p["fa_per_hour"] is not None]
        axes.plot([max(p["fa_per_hour"], floor) for p in points], [p["frr"] for p in points], marker=".",
                  label=word)
    _det_axes(axes, floor, "false accepts per hour caused by the keyword", "false-reject rate of the keyword", title,
              {"fontsize": 7, "ncol": 2})
    _save(figure, path)


def latency(stages: list[dict], budget_ms: float, title: str, path: Path) -> None:
    """Time per stage of one inference period, estimated (± uncertainty) and, where known, measured, against the
    period the board has for it (budget_ms).

    stages: {"name", "estimated_us", "uncertainty" (fraction), "measured_us" (or None)}.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(stages) + 1.8))
    ys = np.arange(len(stages))
    estimated = [s["estimated_us"] / 1000 for s in stages]
    errors = [s["estimated_us"] * s["uncertainty"] / 1000 for s in stages]
    measured = [s.get("measured_us") for s in stages]
    has_measured = any(m is not None for m in measured)
    height = 0.4 if has_measured else 0.7
    axes.barh(ys, estimated, height, xerr=errors, capsize=3, label="estimated (cost model)")
    if has_measured:
        axes.barh(ys + height, [(m or 0) / 1000 for m in measured], height, label="measured (kws bench)")
    axes.axvline(budget_ms, color="red", linestyle="--", label=f"real-time budget ({budget_ms:g} ms)")
    axes.set_yticks(ys + (height / 2 if has_measured else 0), [s["name"] for s in stages])
    axes.invert_yaxis()
    axes.set_xlabel("time on the board (ms)")
    axes.grid(alpha=0.3, axis="x")
    axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    _save(figure, path)


def current_trace(time_ms: np.ndarray, current_ma: np.ndarray, markers: dict[str, np.ndarray], title: str,
                  path: Path) -> None:
    """Supply current against time with the intervals where each marker is high shaded (one colour per marker)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9, 3.5))
    axes.plot(time_ms, current_ma, linewidth=0.6, color="black", label="current")
    for (name, high), colour in zip(markers.items(), ("tab:orange", "tab:blue"), strict=False):
        if np.any(high):
            axes.fill_between(time_ms, 0, 1, where=high, transform=axes.get_xaxis_transform(), color=colour,
                              alpha=0.25, step="post", label=f"{name} marker high")
    axes.set_xlabel("time (ms)")
    axes.set_ylabel("current (mA)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")
    axes.set_title(title, fontsize=10)
    _save(figure, path)
