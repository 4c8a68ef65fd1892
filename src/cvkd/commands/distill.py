"""`cvkd distill`: train a student from frozen teachers (the paper's multi-teacher method or another strategy)."""

from __future__ import annotations

import argparse

from cvkd.commands.train import add_run_parser, load_run_config, print_config, train_and_report
from cvkd.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd distill`."""
    return add_run_parser(subparsers, "distill", "distil teachers into a student from a YAML recipe")


def run(args: argparse.Namespace) -> int:
    """Distil and print where the run is."""
    config = load_run_config(args)
    if args.print_config:
        return print_config(config)
    if not config.distill.teachers:
        raise ConfigError("distill.teachers is empty: name the teacher runs (RUN, RUN:stream or RUN:fused)")
    return train_and_report(config, args)
