"""`cvkd fuse`: accuracy of per-stream score files and of their weighted late fusion (CoViAR: 2:1:1)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from cvkd.data.lists import read_class_order
from cvkd.errors import ConfigError, ScoreMismatchError
from cvkd.scores.files import ScoreSet, load_scores
from cvkd.scores.fusion import DEFAULT_GRID, check_weights, default_weights_for, format_weights, fuse, search_weights
from cvkd.scores.matching import Alignment, align_scores
from cvkd.scores.metrics import Metrics, summarize


_SEARCH_PLACES = {"val": "the --val files", "files": "these same files (optimistic: chosen on the test data)"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd fuse`."""
    parser = subparsers.add_parser(
        "fuse",
        help="accuracy of score files and of their weighted late fusion (CoViAR: 2*I + 1*MV + 1*R)",
        description="Print top-1 / top-5 / mean class accuracy of each score file (cvkd's or CoViAR's .npz) and of "
                    "the weighted sum of their raw logits. Files are matched video by video by name (class folder "
                    "and file name, any extension), or by position when counts, order and labels agree but some "
                    "names are spelled differently (a note says how many).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="score files, e.g. iframe.npz mv.npz residual.npz")
    parser.add_argument("--weights", nargs="+", type=float, metavar="W",
                        help="one weight per file (default: by each file's recorded stream, I-frame 2, MV 1, "
                             "residual 1; files that record none: 2 1 1 for three files, else 1)")
    parser.add_argument("--search", action="store_true",
                        help="try every combination of --grid weights and keep the best top-1 (on --val if given)")
    parser.add_argument("--val", nargs="+", metavar="FILE",
                        help="search the weights on these score files (same streams, same order) and apply them to "
                             "FILE...; implies --search")
    parser.add_argument("--grid", nargs="+", type=float, default=list(DEFAULT_GRID), metavar="W",
                        help=f"weight values tried by --search (default: {' '.join(f'{w:g}' for w in DEFAULT_GRID)})")
    parser.add_argument("--class-map", metavar="FILE",
                        help="class order of files that record no class names (CoViAR's): a class list (one name "
                             "a line, or classInd.txt's '1 Name'), or one of CoViAR's data lists ('path class "
                             "label' lines, e.g. hmdb51_split1_test.txt); files are then fused class by class name")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


@dataclass(frozen=True)
class Row:
    """One line of the result table: a score file (or the fusion), its weight and its metrics."""

    name: str
    stream: str
    weight: float | None
    metrics: Metrics


@dataclass(frozen=True)
class SearchResult:
    """Weights chosen by the search, where ("val": the --val files, "files": the files measured) and their top-1 (%)."""

    weights: tuple[float, ...]
    chosen_on: str
    top1: float


def load_aligned(paths: list[str], class_map: str | None = None) -> Alignment:
    """Load score files and match their classes (through `class_map`, a class-order file, if given) and videos."""
    class_names = None if class_map is None else read_class_order(class_map)
    return align_scores([load_scores(path) for path in paths], class_names)


def choose_weights(
    args: argparse.Namespace, score_sets: list[ScoreSet]
) -> tuple[tuple[float, ...], SearchResult | None]:
    """The fusion weights asked for: given, searched (on --val or the files themselves) or the default."""
    searching = args.search or args.val is not None
    if args.weights is not None:
        if searching:
            raise ConfigError("give either --weights or --search/--val, not both")
        return check_weights(args.weights, len(score_sets)), None
    if not searching:
        return default_weights_for(score_sets), None
    search_sets, chosen_on = score_sets, "files"
    if args.val is not None:
        if len(args.val) != len(args.files):
            raise ConfigError(f"{len(args.val)} --val file(s) for {len(args.files)} score file(s): give one per file")
        search_sets, chosen_on = list(load_aligned(args.val, args.class_map).score_sets), "val"
        if search_sets[0].num_classes != score_sets[0].num_classes:
            raise ScoreMismatchError(f"{search_sets[0].display_name}: {search_sets[0].num_classes} classes but "
                            f"{score_sets[0].display_name} has {score_sets[0].num_classes}")
    weights, top1 = search_weights(search_sets, args.grid)
    return weights, SearchResult(weights, chosen_on, top1)


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    k = min(5, rows[0].metrics.num_classes)
    header = ("file", "stream", "weight", "videos", "top-1", f"top-{k}", "mean-class")
    cells = [header] + [
        (row.name, row.stream, "" if row.weight is None else f"{row.weight:g}", str(row.metrics.n),
         f"{row.metrics.top1:.2f}", f"{row.metrics.top5:.2f}", f"{row.metrics.mean_class:.2f}")
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) if column < 2 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(line, widths))).rstrip()
             for line in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the accuracy of every score file and of their fusion."""
    if args.weights is not None:
        check_weights(args.weights, len(args.files))
    alignment = load_aligned(args.files, args.class_map)
    score_sets = list(alignment.score_sets)
    weights, search = choose_weights(args, score_sets)
    fused = fuse(score_sets, weights)
    rows = [Row(s.display_name, s.stream or "", w, summarize(s.scores, s.labels)) for s, w in zip(score_sets, weights)]
    rows.append(Row(f"fused {format_weights(weights)}", "", None, summarize(fused.scores, fused.labels)))
    if args.json:
        print(json.dumps({
            "files": [{"path": r.name, "stream": r.stream or None, "weight": r.weight, **r.metrics.as_dict()}
                      for r in rows[:-1]],
            "fused": {"weights": list(weights), **rows[-1].metrics.as_dict()},
            "search": None if search is None else {
                "weights": list(search.weights), "chosen_on": search.chosen_on, "top1": search.top1,
            },
            "notes": list(alignment.notes),
        }))
        return 0
    for note in alignment.notes:
        print(f"note: {note}")
    if search is not None:
        where = _SEARCH_PLACES[search.chosen_on]
        print(f"best weights on {where}: {format_weights(search.weights)} "
              f"(top-1 {search.top1:.2f}%, grid {' '.join(f'{w:g}' for w in args.grid)})")
    print(format_table(rows))
    return 0
