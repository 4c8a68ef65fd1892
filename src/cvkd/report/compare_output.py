"""The comparison as Markdown, CSV and a bar chart (accuracy with its seed spread, costs written on each bar)."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from cvkd.fileio import atomic_write_text
from cvkd.report.compare import Comparison, CompareRow, verdict
from cvkd.report.model_costs import UNIT_NOTE, format_ratio
from cvkd.report.plots import new_figure, save_figure
from cvkd.report.variants import FROZEN_MARK

CSV_COLUMNS = (
    "variant", "kind", "streams", "runs", "seeds", "n", "top1_mean", "top1_min", "top1_max", "top1_per_run",
    "delta_vs_teacher", "params_m", "params_ratio", "gmacs_per_gop_frame", "gmacs_ratio", "gmacs_per_video",
    "latency_ms", "latency_ratio",
)


def _accuracy_cell(row: CompareRow) -> str:
    """`mean [min..max]` over seeds, or the single value."""
    if row.n == 1:
        return f"{row.mean:.2f}"
    return f"{row.mean:.2f} [{row.low:.2f}..{row.high:.2f}]"


def _ratio_cell(value: float | None) -> str:
    """A ratio cell: `2.40x`, or an empty cell when not measured."""
    return "" if value is None else format_ratio(value)


def format_markdown(comparison: Comparison) -> str:
    """The comparison table with its settings, the notes and the verdict, as Markdown."""
    protocol = comparison.protocol
    teacher = comparison.teacher
    timed = teacher.profile.latency is not None
    lines = [
        f"# Teacher vs students ({protocol.split}, {protocol.segments} segments x {protocol.crops} crop"
        f"{'s' if protocol.crops > 1 else ''})",
        "",
        f"Top-1: fused accuracy (%) on the {protocol.split} split; for several seeds of one experiment the mean "
        "[min..max] over the seeds. Delta: points vs the teacher.",
        f"Compute: {UNIT_NOTE}, per GOP-weighted frame (I + {comparison.gop - 1} (MV + R)) / {comparison.gop} "
        f"at {comparison.crop}x{comparison.crop}. Ratios: teacher / student.",
        ("Latency: median CPU time of one sample (B=1, S=1: one frame through every stream), "
         f"{comparison.num_threads} threads." if timed else "Latency: not measured (--no-latency)."),
        "",
        "| variant | streams | runs | seeds | top-1 % | delta (points) | params (M) | params ratio | "
        "GMACs / frame | GMACs ratio | latency (ms) | latency ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in comparison.rows:
        ratios = comparison.ratios(row)
        latency = row.profile.latency_ms
        delta = "" if row is teacher else f"{comparison.delta(row):+.2f}"
        lines.append("| " + " | ".join([
            row.variant, row.streams, ", ".join(row.runs), str(row.n), _accuracy_cell(row), delta,
            f"{row.profile.params_m:.2f}", format_ratio(ratios["params"]),
            f"{row.profile.gmacs_per_gop_frame:.3f}", format_ratio(ratios["macs_per_gop_frame"]),
            "" if latency is None else f"{latency:.1f}", _ratio_cell(ratios["latency"]),
        ]) + " |")
    lines += ["", f"Streams marked `{FROZEN_MARK}` are frozen (copied from a teacher and kept fixed).", "",
              verdict(comparison), ""]
    return "\n".join(lines)


def csv_rows(comparison: Comparison) -> list[dict[str, object]]:
    """One dict per table row with the CSV_COLUMNS keys (numbers unrounded; empty strings when not measured)."""
    rows = []
    for row in comparison.rows:
        ratios = comparison.ratios(row)
        latency = row.profile.latency_ms
        rows.append({
            "variant": row.variant, "kind": row.kind, "streams": row.streams, "runs": ";".join(row.runs),
            "seeds": ";".join(map(str, row.seeds)), "n": row.n, "top1_mean": row.mean, "top1_min": row.low,
            "top1_max": row.high, "top1_per_run": ";".join(f"{value:.4f}" for value in row.top1),
            "delta_vs_teacher": comparison.delta(row), "params_m": row.profile.params_m,
            "params_ratio": ratios["params"], "gmacs_per_gop_frame": row.profile.gmacs_per_gop_frame,
            "gmacs_ratio": ratios["macs_per_gop_frame"],
            "gmacs_per_video": row.profile.costs.macs_per_video / 1e9,
            "latency_ms": "" if latency is None else latency,
            "latency_ratio": "" if ratios["latency"] is None else ratios["latency"],
        })
    return rows


def write_csv(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Write the table as CSV (atomically); return the path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(comparison))
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def plot_comparison(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Bars of mean top-1 with min..max whiskers over seeds, the teacher's level dashed, params and GMACs per bar."""
    rows = comparison.rows
    figure = new_figure(max(5.0, 1.6 * len(rows) + 1.5), 4.8)
    axes = figure.add_subplot()
    positions = np.arange(len(rows))
    means = np.array([row.mean for row in rows])
    whiskers = np.array([[row.mean - row.low for row in rows], [row.high - row.mean for row in rows]])
    colours = ["tab:gray" if row is comparison.teacher else "tab:blue" for row in rows]
    bars = axes.bar(positions, means, color=colours, yerr=whiskers, capsize=4, ecolor="black")
    axes.bar_label(bars, labels=[f"{row.mean:.1f}" + (f" (n={row.n})" if row.n > 1 else "") for row in rows],
                   fontsize=8, padding=3, label_type="edge")
    axes.axhline(comparison.teacher.mean, color="tab:gray", linestyle="--", linewidth=1)
    labels = [f"{_wrap(row.variant)}\n{row.profile.params_m:.2f} M params\n"
              f"{row.profile.gmacs_per_gop_frame:.3g} GMACs/frame" for row in rows]
    axes.set_xticks(positions, labels=labels, fontsize=7)
    axes.set_ylabel(f"{comparison.protocol.split} top-1 (%)")
    top = max(row.high for row in rows)
    axes.set_ylim(0, min(105.0, math.ceil(top / 10 + 1) * 10) if top > 0 else 1.0)
    axes.grid(axis="y", alpha=0.3)
    axes.set_title("Teacher vs students: top-1 (whiskers: min..max over seeds)\n"
                   "under each bar: parameters, GMACs per GOP-weighted frame", fontsize=9)
    return save_figure(figure, path)


def _wrap(text: str, width: int = 18) -> str:
    """Break a label into lines of at most about `width` characters at spaces."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def write_outputs(comparison: Comparison, out: str | os.PathLike) -> list[Path]:
    """Write compare.md, compare.csv and compare.png into `out`; return their paths."""
    out = Path(out)
    markdown = out / "compare.md"
    atomic_write_text(markdown, format_markdown(comparison))
    return [markdown, write_csv(comparison, out / "compare.csv"), plot_comparison(comparison, out / "compare.png")]
