"""`cvkd cache`: build a distillation run's teacher cache as a job of its own (alone or under torchrun)."""

from __future__ import annotations

import argparse
import os

from cvkd.commands.train import add_run_parser, load_run_config, print_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `cvkd cache`."""
    return add_run_parser(subparsers, "cache",
                          "build the teacher cache of a distillation recipe (cvkd train / distill then reuse it)",
                          resumable=False)  # a complete cache is found and reused, an incomplete one built again


def run(args: argparse.Namespace) -> int:
    """Build the run's teacher cache and print where it is."""
    config = load_run_config(args)
    if args.print_config:
        return print_config(config)
    from cvkd.engine.cache_job import build_run_cache

    folder = build_run_cache(config, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process returns here; one line is enough
        print(f"teacher cache ready in {folder}: cvkd train / distill with the same config reuse it")
    return 0
