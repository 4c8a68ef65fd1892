"""The evidence tables of README.md and docs/benchmarks.md, printed from `cvkd compare --out` reports (compare.json).

Run: .venv/bin/python benchmarks/evidence_tables.py REPORT_DIR [--title TEXT]

Prints two Markdown tables: one row per model (seeds, top-1 per seed, mean ± sd, 95 % t-interval over the seeds,
parameter and GMACs ratios), and one row per judged difference (role, difference, 95 % t-interval, p, Holm-adjusted
p for secondary rows, verdict), so the documents carry exactly what the report holds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHORT = {
    "KD (1 teacher: fused)": "compact, KD from the fused teacher (`compact_kd`)",
    "no KD": "compact, no KD (`compact_nokd`)",
    "KD per output (iframe from iframe, mv from mv, residual from residual, fused from fused)":
        "compact, per stream + fused term (`compact_streams`)",
    "avg_targets per output (iframe from iframe, mv from mv, residual from residual)":
        "compact, per stream, no fused term (`compact_streams_nofused`)",
    "avg_targets per output (iframe from iframe + mv + residual + fused, mv from iframe + mv + residual + fused, "
    "residual from iframe + mv + residual + fused, fused from fused)": "compact, every stream + fused term (`compact_mkd_fused`)",
    "avg_targets (4 teachers: iframe, mv, residual, fused)": "compact, every stream, no fused term (`compact_mkd`)",
    "mmkd (4 teachers: iframe, mv, residual, fused)": "compact, every stream, MMKD (`compact_mkd`, strategy `mmkd`)",
}


SLIM = "slim, per stream, no fused term (`compact_slim_streams`: MV and residual `cnn_micro`)"


def label(variant: str) -> str:
    """A short name for a row."""
    return SHORT.get(variant, variant)


def row_names(rows: list[dict]) -> dict[str, str]:
    """Each row's variant -> its short name; the slim student (MV or residual `cnn_micro`) is named apart from the
    all-`cnn_tiny` student taught the same way."""
    names = {}
    for row in rows:
        backbones = row["profile"]["backbones"].values()
        slim = row["kind"] != "teacher" and "cnn_micro" in backbones
        names[row["variant"]] = "CoViAR teacher" if row["kind"] == "teacher" else SLIM if slim else label(row["variant"])
    return names


def number(value: float | None, digits: int = 2, sign: bool = False) -> str:
    """A figure, or `-` when there is none."""
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def p_text(value: float | None) -> str:
    """A p-value as the table prints it."""
    if value is None:
        return ""
    return "< 0.0001" if value < 1e-4 else f"{value:.3g}"


def main() -> None:
    """Print the tables of one report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    args = parser.parse_args()
    document = json.loads((args.report / "compare.json").read_text())
    print(f"Test set: {document['videos']} videos; {document['protocol']['segments']} segments x "
          f"{document['protocol']['crops']} crop.\n")
    print("| model | seeds | top-1 % per seed | mean ± sd | 95 % t-interval | params ratio | GMACs ratio |")
    print("|---|---|---|---:|---:|---:|---:|")
    names = row_names(document["rows"])
    for row in document["rows"]:
        seeds = ", ".join(map(str, row["seeds"])) or "-"
        per_seed = " / ".join(f"{value:.2f}" for value in row["top1_per_run"])
        spread = "" if row["top1_sd"] is None else f" ± {row['top1_sd']:.2f}"
        low, high = row["top1_interval"] or (None, None)
        ratios = row["ratios"]
        name = names[row["variant"]]
        print(f"| {name} | {seeds} | {per_seed} | {row['top1_mean']:.2f}{spread} | [{number(low)}, {number(high)}] | "
              f"{ratios['params']:.2f}x | {ratios['macs_per_gop_frame']:.2f}x |")
    print("\n| model | vs | role | difference | 95 % t-interval | p | Holm-adjusted p | verdict |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for difference in document["differences"]:
        primary = difference["role"] == "primary"
        role = f"**primary**: {difference['claim']}" if primary else "secondary"
        words = f"**{difference['words']}**" if difference["real"] else difference["words"]
        print(f"| {names.get(difference['row'], difference['row'])} | "
              f"{names.get(difference['baseline'], difference['baseline'])} | {role} | "
              f"{number(difference['difference'], sign=True)} | [{number(difference['low'], sign=True)}, "
              f"{number(difference['high'], sign=True)}] | {p_text(difference['p'])} | "
              f"{'' if primary else p_text(difference['p_adjusted'])} | {words} |")


if __name__ == "__main__":
    main()
