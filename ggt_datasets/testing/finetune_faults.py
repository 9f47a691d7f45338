"""Run training/finetune.py with a checkpoint save that stops half-way, for kill tests.

    python -m ggt_datasets.testing.finetune_faults --hang-at-step 4 --signal FILE -- FINETUNE_ARGS...

When the save of step 4 has written accelerate's state, the largest file in the folder being
written is cut to half its size (a write caught mid-way), FILE is created, and the process sleeps
until the test kills it (SIGKILL). Every other save is left alone.

Example:
    >>> # subprocess.Popen([sys.executable, "-m", "ggt_datasets.testing.finetune_faults",
    >>> #                   "--hang-at-step", "4", "--signal", str(flag), "--", *args])
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path


def install_hanging_save(step: int, signal: Path) -> None:
    """Patch `accelerate.Accelerator.save_state` to hang (after a half-written file) at `step`."""
    import accelerate

    original = accelerate.Accelerator.save_state

    def save_state(self, output_dir=None, *args, **kwargs):
        result = original(self, output_dir, *args, **kwargs)
        match = re.search(r"checkpoint-(\d+)", Path(str(output_dir)).name)
        if match and int(match.group(1)) == step:
            files = sorted((p for p in Path(output_dir).iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
            if files:
                data = files[-1].read_bytes()
                files[-1].write_bytes(data[: len(data) // 2])
            signal.write_text(str(output_dir))
            while True:
                time.sleep(1)
        return result

    accelerate.Accelerator.save_state = save_state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hang-at-step", type=int, required=True)
    p.add_argument("--signal", type=Path, required=True, help="file created when the save hangs")
    p.add_argument("finetune_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    rest = args.finetune_args[1:] if args.finetune_args[:1] == ["--"] else args.finetune_args
    install_hanging_save(args.hang_at_step, args.signal)
    from ggt_datasets.training import finetune

    return finetune.cli(rest)


if __name__ == "__main__":
    sys.exit(main())
