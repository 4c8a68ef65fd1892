"""The comparison as Markdown, CSV, JSON and a chart (accuracy with its 95 % interval; paired differences with theirs).

All four are written from the same `Comparison`, so they show the same figures; Markdown and JSON also record the
statistics settings and the environment (versions, threads, command, machine).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from cvkd.fileio import atomic_write_json, atomic_write_text
from cvkd.report.compare import Comparison, CompareRow
from cvkd.report.differences import PairedDifference, format_interval, format_p
from cvkd.report.cost_accounting import safe_ratio
from cvkd.report.environment import environment_lines
from cvkd.report.model_profile import UNIT_NOTE, format_ratio
from cvkd.report.plots import new_figure, save_figure
from cvkd.report.variants import FROZEN_MARK
from cvkd.scores.mcnemar import EXACT_BELOW
from cvkd.scores.statistics import ALPHA, LEVEL, POOLED_T

JSON_FORMAT = "cvkd-compare-2"
CSV_COLUMNS = (
    "variant", "kind", "streams", "runs", "seeds", "n", "top1_mean", "top1_sd", "top1_low95", "top1_high95",
    "top1_per_run", "delta_vs_teacher", "delta_low95", "delta_high95", "p_vs_teacher", "p_adjusted_vs_teacher",
    "verdict_vs_teacher", "params_m",
    "params_ratio", "gmacs_per_gop_frame", "gmacs_ratio", "gmacs_per_video", "latency_ms", "latency_ratio",
    "seconds_per_video", "seconds_ratio",
)


def statistics_note(comparison: Comparison) -> str:
    """How the intervals and p-values were computed, in one paragraph."""
    return (f"Verdict: {POOLED_T} (each run's top-1 on the {comparison.videos} test videos; seed variance pooled "
            "over both rows; a row with one run borrows the other row's seed variance; one run on each side is not "
            f"judged), {LEVEL * 100:g} % t-interval. Each claim's primary comparison is judged at "
            f"{ALPHA * 100:g} % on its own; every other difference is secondary and is real only when its "
            "Holm-adjusted p (over all secondary rows) is below "
            f"{ALPHA * 100:g} %, so a secondary interval that excludes 0 may still be within noise. False-real rate "
            "measured by simulation: docs/statistics.md. McNemar (where the runs disagree, not the verdict): exact "
            f"binomial below {EXACT_BELOW} discordant videos, chi-square with continuity correction from "
            f"{EXACT_BELOW}; one test per pair of runs, the largest p shown.")


def _accuracy_cell(row: CompareRow) -> str:
    """`mean ± sd` over seeds, or the single value."""
    return f"{row.mean:.2f}" if row.sd is None else f"{row.mean:.2f} ± {row.sd:.2f}"


def _ratio_cell(value: float | None) -> str:
    """A ratio cell: `2.40x`, or an empty cell when not measured."""
    return "" if value is None else format_ratio(value)


def _p_cell(difference: PairedDifference) -> str:
    """The largest McNemar p over the pairs of runs, with its method(s): `0.0215 (exact)`."""
    methods = "/".join(sorted({test.method for test in difference.tests}))
    return f"{format_p(difference.p)} ({methods})"


def _discordant_cell(difference: PairedDifference) -> str:
    """`n10 / n01` per pair of runs: videos only the model gets right / only the other gets right."""
    return ", ".join(f"{test.n10} / {test.n01}" for test in difference.tests)


def _main_table(comparison: Comparison) -> list[str]:
    """The rows: accuracy, its interval, costs and ratios."""
    lines = [
        "| variant | streams | runs | seeds | top-1 % | 95 % interval | params (M) | params ratio | "
        "GMACs / frame | GMACs ratio | latency (ms) | latency ratio | s / video | s / video ratio |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    protocol = comparison.protocol
    teacher_seconds = comparison.teacher.profile.seconds_per_video(protocol.segments, protocol.crops)
    for row in comparison.rows:
        ratios = comparison.ratios(row)
        latency = row.profile.latency_ms
        interval = "" if row.interval is None else f"[{row.interval.low:.2f}, {row.interval.high:.2f}]"
        lines.append("| " + " | ".join([
            row.variant, row.streams, ", ".join(row.runs), ", ".join(map(str, row.seeds)) or "-",
            _accuracy_cell(row), interval,
            f"{row.profile.params_m:.2f}", format_ratio(ratios["params"]),
            f"{row.profile.gmacs_per_gop_frame:.3f}", format_ratio(ratios["macs_per_gop_frame"]),
            "" if latency is None else f"{latency:.1f}", _ratio_cell(ratios["latency"]),
            *_seconds_cells(teacher_seconds, row.profile.seconds_per_video(protocol.segments, protocol.crops)),
        ]) + " |")
    return lines


def _seconds_cells(teacher: float | None, row: float | None) -> list[str]:
    """Seconds per video end to end and teacher / row, or empty cells when not measured."""
    if row is None:
        return ["", ""]
    return [f"{row:.3f}", "" if teacher is None else format_ratio(safe_ratio(teacher, row))]


def _differences_table(comparison: Comparison) -> list[str]:
    """One line per paired difference."""
    lines = [
        "| model | vs | role | difference (points) | 95 % t-interval | p | Holm-adjusted p | verdict | McNemar p "
        "| discordant videos (model / other right) |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for difference in comparison.differences:
        v = difference.verdict
        role = f"**primary**: {difference.claim}" if difference.primary else "secondary"
        lines.append("| " + " | ".join([
            difference.row.variant, difference.baseline.variant, role, f"{v.estimate:+.2f}",
            format_interval(v.interval), format_p(v.p), "" if difference.primary else format_p(v.p_adjusted),
            f"**{difference.words}**" if difference.real else difference.words, _p_cell(difference),
            _discordant_cell(difference),
        ]) + " |")
    return lines


def format_markdown(comparison: Comparison) -> str:
    """The comparison table, the paired differences, the notes, the verdict and the environment, as Markdown."""
    protocol = comparison.protocol
    timed = comparison.teacher.profile.latency is not None
    videos = comparison.videos
    lines = [
        f"# Teacher vs students ({protocol.split}, {protocol.segments} segments x {protocol.crops} crop"
        f"{'s' if protocol.crops > 1 else ''})",
        "",
        f"Test set: {videos} videos of the {protocol.split} split (one video is {100 / videos:.2f} points). "
        "Top-1: fused accuracy (%); for several seeds of one experiment the mean ± standard deviation (ddof 1) over "
        "the seeds, with its 95 % t-interval over the seeds (a single run: the Wilson interval over its videos, "
        "which cannot see the seed-to-seed spread).",
        f"Compute: {UNIT_NOTE}, per GOP-weighted frame (I + {comparison.gop - 1} (MV + R)) / {comparison.gop} "
        f"at {comparison.crop}x{comparison.crop}. Ratios: teacher / student.",
        ("Latency: median CPU time of one sample (B=1, S=1: one frame through every stream), "
         f"{comparison.num_threads} threads. s / video: seconds per video end to end at this protocol's views "
         "(decoding + representation + transforms + networks; cvkd.report.video_time)."
         if timed else "Latency: not measured (--no-latency)."),
        "",
        *_main_table(comparison),
        "",
        f"Streams marked `{FROZEN_MARK}` are frozen (copied from a teacher and kept fixed).",
        "",
        "## Paired differences",
        "",
        "Each student minus the teacher, and minus each simpler baseline (single-teacher KD minus no KD; "
        "multi-teacher minus no KD and single-teacher KD), and any pair asked for, in points on the same test "
        "videos. "
        + statistics_note(comparison),
        "",
        *_differences_table(comparison),
        "",
        comparison.verdict(),
        "",
        "## Environment",
        "",
        *[f"- {line}" for line in environment_lines(comparison.environment)],
        "",
    ]
    return "\n".join(lines)


def _teacher_difference(comparison: Comparison, row: CompareRow) -> PairedDifference | None:
    """`row` minus the teacher, or None for the teacher's own row."""
    return next((d for d in comparison.differences if d.row is row and d.baseline is comparison.teacher), None)


def csv_rows(comparison: Comparison) -> list[dict[str, object]]:
    """One dict per table row with the CSV_COLUMNS keys (numbers unrounded; empty strings when not measured)."""
    rows = []
    for row in comparison.rows:
        ratios = comparison.ratios(row)
        latency = row.profile.latency_ms
        versus = _teacher_difference(comparison, row)
        rows.append({
            "variant": row.variant, "kind": row.kind, "streams": row.streams, "runs": ";".join(row.runs),
            "seeds": ";".join(map(str, row.seeds)), "n": row.n, "top1_mean": row.mean,
            "top1_sd": "" if row.sd is None else row.sd,
            "top1_low95": "" if row.interval is None else row.interval.low,
            "top1_high95": "" if row.interval is None else row.interval.high,
            "top1_per_run": ";".join(f"{value:.4f}" for value in row.top1),
            "delta_vs_teacher": "" if versus is None else versus.interval.estimate,
            "delta_low95": "" if versus is None else _blank_nan(versus.interval.low),
            "delta_high95": "" if versus is None else _blank_nan(versus.interval.high),
            "p_vs_teacher": "" if versus is None else _blank_nan(versus.verdict.p),
            "p_adjusted_vs_teacher": "" if versus is None else _blank_nan(versus.verdict.p_adjusted),
            "verdict_vs_teacher": "" if versus is None else versus.words,
            "params_m": row.profile.params_m,
            "params_ratio": ratios["params"], "gmacs_per_gop_frame": row.profile.gmacs_per_gop_frame,
            "gmacs_ratio": ratios["macs_per_gop_frame"],
            "gmacs_per_video": row.profile.costs.macs_per_video / 1e9,
            "latency_ms": "" if latency is None else latency,
            "latency_ratio": "" if ratios["latency"] is None else ratios["latency"],
            **_seconds_columns(comparison, row),
        })
    return rows


def _blank_nan(value: float) -> float | str:
    """A number, or an empty cell for NaN."""
    return "" if value != value else value


def _seconds_columns(comparison: Comparison, row) -> dict[str, object]:
    """seconds_per_video (end to end, at the comparison's protocol) and seconds_ratio (teacher / row), or ''."""
    views = (comparison.protocol.segments, comparison.protocol.crops)
    seconds = row.profile.seconds_per_video(*views)
    teacher = comparison.teacher.profile.seconds_per_video(*views)
    return {"seconds_per_video": "" if seconds is None else seconds,
            "seconds_ratio": "" if seconds is None or teacher is None else safe_ratio(teacher, seconds)}


def write_csv(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Write the table as CSV (atomically); return the path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(comparison))
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def comparison_json(comparison: Comparison) -> dict:
    """The whole comparison as JSON-ready data: settings, rows (with per-run accuracies), differences, verdict,
    environment."""
    protocol = comparison.protocol
    rows = []
    for row, flat in zip(comparison.rows, csv_rows(comparison)):
        rows.append({
            **{key: flat[key] for key in ("variant", "kind", "streams", "n", "top1_mean")},
            "runs": list(row.runs), "seeds": list(row.seeds), "top1_per_run": row.top1, "top1_sd": row.sd,
            "top1_interval": None if row.interval is None else [row.interval.low, row.interval.high],
            "ratios": {key: _finite(value) for key, value in comparison.ratios(row).items()},
            "profile": row.profile.as_dict(),
        })
    return {
        "format": JSON_FORMAT,
        "protocol": {"split": protocol.split, "segments": protocol.segments, "crops": protocol.crops},
        "videos": comparison.videos, "crop": comparison.crop, "gop": comparison.gop,
        "statistics": {"level": LEVEL, "alpha": ALPHA, "method": POOLED_T, "correction": "holm (secondary rows)",
                       "mcnemar_exact_below": EXACT_BELOW, "note": statistics_note(comparison)},
        "rows": rows,
        "differences": [difference.as_dict() for difference in comparison.differences],
        "verdict": comparison.verdict(),
        "environment": comparison.environment,
    }


def _finite(value: float | None) -> float | None:
    """`value`, or None when it is missing or not finite (JSON has no inf or NaN)."""
    return value if value is not None and math.isfinite(value) else None


def plot_comparison(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Left: bars of mean top-1 with their 95 % intervals, the teacher's level dashed, params and GMACs per bar.
    Right: every paired difference with its 95 % interval against 0."""
    rows, differences = comparison.rows, comparison.differences
    width = max(5.0, 1.6 * len(rows) + 1.5) + (6.0 if differences else 0.0)
    height = max(4.8, 0.35 * len(differences) + 1.8)
    figure = new_figure(width, height)
    grid = figure.add_gridspec(1, 2 if differences else 1, width_ratios=[max(5.0, 1.6 * len(rows) + 1.5), 6.0]
                               if differences else None)
    _plot_accuracies(comparison, figure.add_subplot(grid[0, 0]))
    if differences:
        _plot_differences(differences, figure.add_subplot(grid[0, 1]))
    return save_figure(figure, path)


def _plot_accuracies(comparison: Comparison, axes) -> None:
    """Bars of mean top-1 with their 95 % intervals."""
    rows = comparison.rows
    positions = np.arange(len(rows))
    means = np.array([row.mean for row in rows])
    lows, highs = (np.array(bounds) for bounds in zip(*(_bounds(row) for row in rows)))
    whiskers = np.array([np.maximum(means - lows, 0.0), np.maximum(highs - means, 0.0)])
    colours = ["tab:gray" if row is comparison.teacher else "tab:blue" for row in rows]
    bars = axes.bar(positions, means, color=colours, yerr=whiskers, capsize=4, ecolor="black")
    axes.bar_label(bars, labels=[f"{row.mean:.1f}" + (f" (n={row.n})" if row.n > 1 else "") for row in rows],
                   fontsize=8, padding=3, label_type="edge")
    axes.axhline(comparison.teacher.mean, color="tab:gray", linestyle="--", linewidth=1)
    labels = [f"{_wrap(row.variant)}\n{row.profile.params_m:.2f} M params\n"
              f"{row.profile.gmacs_per_gop_frame:.3g} GMACs/frame" for row in rows]
    axes.set_xticks(positions, labels=labels, fontsize=7)
    axes.set_ylabel(f"{comparison.protocol.split} top-1 (%)")
    top = float(highs.max())
    axes.set_ylim(0, min(105.0, math.ceil(top / 10 + 1) * 10) if top > 0 else 1.0)
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(f"Top-1 on {comparison.videos} test videos (whiskers: 95 % interval)\n"
                   "under each bar: parameters, GMACs per GOP-weighted frame", fontsize=9)


def _bounds(row: CompareRow) -> tuple[float, float]:
    """The row's 95 % interval of top-1, or (mean, mean) when it has none."""
    return (row.mean, row.mean) if row.interval is None else (row.interval.low, row.interval.high)


def _plot_differences(differences: list[PairedDifference], axes) -> None:
    """Each difference as a point with its 95 % t-interval; real ones (by the verdict, after Holm) in colour."""
    positions = np.arange(len(differences))[::-1]
    for position, difference in zip(positions, differences):
        interval = difference.interval
        if not difference.verdict.judged:
            axes.plot(interval.estimate, position, "x", color="tab:gray")
            continue
        colour = ("tab:green" if interval.estimate > 0 else "tab:red") if difference.real else "tab:gray"
        axes.errorbar(interval.estimate, position, xerr=[[interval.estimate - interval.low],
                                                         [interval.high - interval.estimate]],
                      fmt="o", color=colour, capsize=3)
    axes.axvline(0.0, color="black", linewidth=1)
    axes.set_yticks(positions, labels=[f"{_wrap(d.row.variant, 40)}\n  − {d.baseline.variant}" for d in differences],
                    fontsize=6)
    axes.set_xlabel("difference of top-1 (points)")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title("Differences (95 % t-interval; colour: real by the verdict; x: not judged)", fontsize=9)


STUDENT_COLOURS = tuple(f"C{index}" for index in (0, 1, 2, 3, 4, 5, 6, 8, 9))  # matplotlib's cycle without its gray


def plot_cost_accuracy(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Mean top-1 (95 % interval) of every variant against its GMACs per GOP-weighted frame, and against its measured
    seconds per video end to end when the comparison timed them (a second panel); one legend names the variants."""
    views = (comparison.protocol.segments, comparison.protocol.crops)
    seconds = [row.profile.seconds_per_video(*views) for row in comparison.rows]
    timed = all(value is not None for value in seconds)
    rows = len(comparison.rows)
    figure = new_figure(11.0 if timed else 6.5, 4.2 + 0.22 * rows)
    panels = [("GMACs per GOP-weighted frame", [row.profile.gmacs_per_gop_frame for row in comparison.rows])]
    if timed:
        panels.append((f"seconds per video end to end ({views[0]}x{views[1]} views)", seconds))
    grid = figure.add_gridspec(2, len(panels), height_ratios=[4.2, 0.22 * rows + 0.3])
    for column, (label, costs) in enumerate(panels):
        _scatter_variants(comparison, figure.add_subplot(grid[0, column]), costs, label)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    legend_axes = figure.add_subplot(grid[1, :])
    legend_axes.axis("off")
    legend_axes.legend(handles, labels, loc="upper left", fontsize=7, ncol=1, frameon=False)
    return save_figure(figure, path)


def _scatter_variants(comparison: Comparison, axes, costs: list[float], label: str) -> None:
    """One marker per variant at (cost, mean top-1) with its 95 % interval as a vertical whisker."""
    markers = "osD^vP*Xhp<>"
    for index, (row, cost) in enumerate(zip(comparison.rows, costs)):
        low, high = _bounds(row)
        colour = "tab:gray" if row is comparison.teacher else STUDENT_COLOURS[index % len(STUDENT_COLOURS)]
        axes.errorbar(cost, row.mean, yerr=[[max(row.mean - low, 0.0)], [max(high - row.mean, 0.0)]],
                      fmt=markers[index % len(markers)], color=colour, capsize=3, label=f"{row.variant} ({row.n} run"
                      f"{'s' if row.n > 1 else ''}): {row.mean:.1f} %")
    axes.set_xscale("log")
    axes.set_xlabel(f"{label} (log scale)")
    axes.set_ylabel(f"{comparison.protocol.split} top-1 (%)")
    axes.grid(alpha=0.3)
    axes.set_title(f"Accuracy against cost ({comparison.videos} test videos; whiskers: 95 % interval)", fontsize=9)


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
    """Write compare.md, compare.csv, compare.json, compare.png and compare_cost.png into `out`; return their paths."""
    out = Path(out)
    markdown, document = out / "compare.md", out / "compare.json"
    atomic_write_text(markdown, format_markdown(comparison))
    atomic_write_json(document, comparison_json(comparison))
    return [markdown, write_csv(comparison, out / "compare.csv"), document,
            plot_comparison(comparison, out / "compare.png"), plot_cost_accuracy(comparison, out / "compare_cost.png")]
