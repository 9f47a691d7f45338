"""`python -m ggt_datasets.qc FOLDER ...` and, at scale, `accelerate launch -m ggt_datasets.qc FOLDER ...`.

Each process takes the pairs whose index % num_processes == its rank, writes a part file, and
the main process merges the parts (after wait_for_everyone) and records every decision.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from ggt_datasets.qc.cli import add_qc_arguments, run_qc_command

    parser = argparse.ArgumentParser(
        prog="python -m ggt_datasets.qc", description="QC of GGT pairs (one part per process)."
    )
    add_qc_arguments(parser)
    args = parser.parse_args(argv)
    rank, world, barrier = 0, 1, None
    try:
        from accelerate import PartialState

        state = PartialState()
        if state.num_processes > 1:
            rank, world, barrier = state.process_index, state.num_processes, state.wait_for_everyone
    except ImportError:
        pass
    if world == 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Launched as several processes without a process group (e.g. accelerate --multi_gpu on
        # a machine with no GPU): the env still says who we are; rank 0 waits for the part files.
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
    try:
        return run_qc_command(args, rank, world, barrier)
    except (ValueError, FileNotFoundError) as err:
        print(f"ggt qc: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
