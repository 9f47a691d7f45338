"""The `ggt` command line. Each subcommand lives with its part and adds itself here.

A part exposes `add_cli(subparsers)`, which adds one or more subparsers and sets `func` on each
(a function taking the parsed args and returning an exit code). Heavy imports (torch, the API
clients) happen inside those functions, so `ggt --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from ggt_datasets._optional import MissingExtraError
from ggt_datasets.atomic import WriteError
from ggt_datasets.backends.base import FatalBackendError

# module -> the parts of `ggt` it adds. Order is the order in `ggt --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "ggt_datasets.demo",  # demo
    "ggt_datasets.sample",  # sample
    "ggt_datasets.build",  # build
    "ggt_datasets.hub",  # push
    "ggt_datasets.synth.cli",  # synth, status, export
    "ggt_datasets.qc.cli",  # qc, review
    "ggt_datasets.metrics.cli",  # eval, weights
    "ggt_datasets.training.experiment",  # experiment
    "ggt_datasets.bench.cli",  # bench-mfm, arena-results
)

EPILOG = """\
The usual path: ggt sample (or your own photos) -> ggt synth -> ggt qc -> ggt review ->
ggt export -> ggt build -> ggt push. Run `ggt demo` to see every step on built-in data.
Set GGT_DEBUG=1 to see Python tracebacks."""


def make_parser() -> argparse.ArgumentParser:
    """Build the `ggt` parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="ggt",
        description="Generative Ground Truth: paired data for real-world image restoration.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ggt` console script; returns the exit code."""
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        MissingExtraError,
        WriteError,
        FatalBackendError,
    ) as err:
        # Bad input, a disk that refuses a write, a backend that cannot work (wrong key, model that
        # cannot load): one clear line, no traceback.
        if os.environ.get("GGT_DEBUG"):
            raise
        print(f"ggt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ggt {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
