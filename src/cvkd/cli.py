"""The `cvkd` command: discovers one sub-command per module in `cvkd.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Sequence

import cvkd.commands
from cvkd import __version__
from cvkd.errors import CvkdError


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command found in `cvkd.commands`."""
    parser = argparse.ArgumentParser(
        prog="cvkd",
        description="Compressed-video action recognition (CoViAR) with multi-teacher knowledge distillation.",
    )
    parser.add_argument("--version", action="version", version=f"cvkd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(cvkd.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cvkd.commands.{info.name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; cvkd's own errors print one line and return exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CvkdError as error:
        print(f"cvkd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cvkd {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cvkd info V | head`: the reader left; say nothing more, as other Unix tools do
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not raise again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured in tests): nothing to silence
        pass


if __name__ == "__main__":
    raise SystemExit(main())
