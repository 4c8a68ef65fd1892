"""`cvkd train`: train CoViAR streams (the teachers, or a student without distillation) from a YAML recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from cvkd.config import load_config
from cvkd.runs.schema import RunConfig

CURVES_FILE = "curves.png"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd train`."""
    return add_run_parser(subparsers, "train", "train stream networks from a YAML recipe (key=value overrides)")


def add_run_parser(subparsers, name: str, help_text: str, resumable: bool = True) -> argparse.ArgumentParser:
    """Register a command that takes a run's recipe and overrides (`train`, `distill`, `cache`)."""
    parser = subparsers.add_parser(name, help=help_text)
    add_run_arguments(parser, resumable)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser, resumable: bool = True) -> None:
    """Arguments shared by `train`, `distill` and `cache` (`--resume` only where a run continues)."""
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML recipe: a file, or a built-in one by name (ucf101/mv, hmdb51/student_mkd, "
                             "synthetic/teachers; see configs/); omit to use defaults")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. optim.lr=1e-3 data.root=data/synth")
    if resumable:
        parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--print-config", action="store_true",
                        help="print every key of the resolved config with its default and meaning, and exit")


def load_run_config(args: argparse.Namespace) -> RunConfig:
    """The run's config: the YAML file (if any) with the command-line overrides applied."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    if config is not None:
        config = resolve_recipe(config)
    from cvkd.runs.validate import validate_run_config

    return validate_run_config(load_config(RunConfig, config, overrides))


def run(args: argparse.Namespace) -> int:
    """Train and print where the run is (or, with --print-config, the resolved config)."""
    config = load_run_config(args)
    if args.print_config:
        return print_config(config)
    return train_and_report(config, args)


def print_config(config: RunConfig) -> int:
    """Print every key of `config`: `key: value  (default X)  # description`."""
    from cvkd.runs.describe import describe_config

    for line in describe_config(config):
        print(line.render())
    return 0


def resolve_recipe(name: str) -> str:
    """A config path as given, or a built-in recipe by name when no such file exists: `ucf101/mv`, `hmdb51/student_mkd`,
    `synthetic/teachers` (with or without `.yaml`), shipped with the package."""
    from cvkd.recipes import recipe_path

    if Path(name).exists():
        return name
    built_in = recipe_path(name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return str(built_in) if built_in.is_file() else name


def train_and_report(config: RunConfig, args: argparse.Namespace) -> int:
    """Run the training loop on `config` and print one line about the result (on the main process only)."""
    from cvkd.engine.train import train

    result = train(config, resume=args.resume, progress=not args.no_progress)
    best = "n/a" if result.best_val_top1 is None else f"{result.best_val_top1:.2f}%"
    if result.is_main:  # under torchrun every process returns here; one line is enough
        print(f"finished {result.epochs} epochs in {result.run_dir} (best validation top-1 {best})")
        draw_curves(Path(result.run_dir))
    return 0


def draw_curves(run: Path) -> None:
    """Draw the run's training curves next to its log (RUN/curves.png) and say where they are."""
    from cvkd.report.plots import plot_run_log
    from cvkd.runs.folder import LOG_FILE

    if (run / LOG_FILE).is_file():
        try:
            print(f"training curves: {plot_run_log(run / LOG_FILE, run / CURVES_FILE, run.name)}")
        except ValueError as error:  # a log without loss / accuracy values (e.g. zero epochs trained)
            print(f"no training curves: {error}")
