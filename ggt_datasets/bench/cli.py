"""`ggt bench-mfm --config bench.yaml` and `ggt arena-results RUN...`.

    ggt bench-mfm --config bench.yaml [--output-dir DIR]
    ggt arena-results bench/perception/gemini-adaptive [...] [--json] [--bootstrap 500]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench-mfm` and `arena-results`."""
    b = subparsers.add_parser("bench-mfm", help="compare generators x prompt modes (fidelity, perception, arena)",
                              description="The generator study: see `python -c 'import ggt_datasets.bench.mfm as m; "
                              "help(m)'` for the config. Rerun to resume; nothing is generated twice.")
    b.add_argument("--config", type=Path, required=True, help="bench YAML")
    b.add_argument("--output-dir", help="override output_dir of the config")
    b.set_defaults(func=_bench)
    a = subparsers.add_parser("arena-results", help="tally arena answers: win rates and Bradley-Terry scores",
                              description="Reads RUN/arena.jsonl (written by `ggt review --arena`) of each RUN.")
    a.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="a folder holding arena.jsonl, or the file")
    a.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples for the CIs (default 500)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a.set_defaults(func=_arena)


def _bench(args: argparse.Namespace) -> int:
    import sys

    from ggt_datasets.backends import FatalBackendError
    from ggt_datasets.bench.mfm import load_config, run_bench

    cfg = load_config(args.config)
    if args.output_dir:
        cfg.output_dir = args.output_dir
    try:
        lines = run_bench(cfg)
    except FatalBackendError as err:  # a refused key, a backend that cannot start: the runs stay resumable
        print(f"ggt bench-mfm: error: {err}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print(f"\nwritten: {Path(cfg.output_dir) / 'bench.md'}, bench.csv, bench.json, bench_scores.png, "
          "fidelity_vs_perception.png, contact_sheet.png")
    return 0


def _arena(args: argparse.Namespace) -> int:
    from ggt_datasets.bench.arena import format_tally, read_rounds, tally

    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    result = tally(read_rounds(args.runs), n_boot=args.bootstrap, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print("\n".join(format_tally(result)))
    return 0
