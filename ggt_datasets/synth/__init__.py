"""Synthesis: LQ photos -> HQ targets from a generative model, resumable and never paying twice.

Per item: LQ -> prompt (fixed template or VLM-written) -> generator -> normalised HQ, recorded in a
run directory's SQLite ledger. The CLI is `ggt synth` / `ggt status` / `ggt export`.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> from ggt_datasets.synth import Ledger, SynthConfig, export_run, register_inputs, run_synthesis
    >>> ledger = Ledger("runs/rain")                                   # doctest: +SKIP
    >>> register_inputs(ledger, "photos/rain", category="rain")        # doctest: +SKIP
    >>> run_synthesis(ledger, make_generator("classical"), SynthConfig(concurrency=4))  # doctest: +SKIP
    >>> export_run("runs/rain", "raw")                                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module; imported on first use so `ggt --help` stays fast.
_EXPORTS: dict[str, str] = {
    "Ledger": "ledger",
    "STATES": "ledger",
    "SynthConfig": "config",
    "parse_shard": "config",
    "register_inputs": "inputs",
    "run_synthesis": "runner",
    "RunSummary": "runner",
    "run_batch": "batch",
    "normalize_output": "normalize",
    "load_templates": "prompts",
    "export_run": "export",
    "run_status": "export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
