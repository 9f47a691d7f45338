"""The synthesis step of `ggt demo`: the sample's test LQ photos -> classical HQ targets, offline.

The same engine, ledger and export as `ggt synth` with an API model; only the generator differs
(`classical`: OpenCV filters, no network, no weights, an honest baseline rather than an MFM).

Example:
    >>> from ggt_datasets.synth.demo import demo
    >>> for line in demo(Path("out/raw"), Path("out/synth")):  # doctest: +SKIP
    ...     print(line)
"""

from __future__ import annotations

from pathlib import Path

from ggt_datasets import schema
from ggt_datasets.raw import pair_dir


def demo(raw: Path, out: Path) -> list[str]:
    """Synthesise HQ targets for raw/test/{category}/lq/* into out/run, export to out/ggt-raw.

    Returns printable lines: counts by state, cost, where the run and the raw layout are.
    """
    from ggt_datasets.backends import make_generator
    from ggt_datasets.synth.config import SynthConfig
    from ggt_datasets.synth.export import export_run, format_status, run_status, write_run_templates
    from ggt_datasets.synth.inputs import register_inputs
    from ggt_datasets.synth.ledger import Ledger, check_settings
    from ggt_datasets.synth.prompts import load_templates, template_hashes
    from ggt_datasets.synth.runner import run_synthesis

    raw, out = Path(raw), Path(out)
    run, exported = out / "run", out / "ggt-raw"
    generator = make_generator("classical")
    fixed = {k: v for k, v in load_templates().items() if k in schema.CATEGORIES}
    check_settings(run, {"generator": generator.name, "model": generator.model, "prompt_mode": "fixed", "scale": 1,
                         "templates": template_hashes(fixed)})
    write_run_templates(run, fixed)
    found = 0
    with Ledger(run) as ledger:
        for category in schema.CATEGORIES:
            lq_dir = pair_dir(raw, "test", category, "lq")
            if lq_dir.is_dir() and any(lq_dir.iterdir()):
                found += register_inputs(ledger, lq_dir, category=category, split="test")["found"]
        if not found:
            raise FileNotFoundError(f"{raw}: no test LQ photos under test/<category>/lq/; run `ggt sample` first")
        summary = run_synthesis(ledger, generator, SynthConfig(concurrency=2, progress=False))
    report = export_run(run, exported)
    return [
        f"synthesised {summary.done} of {found} test LQ photos with {generator.model} "
        f"in {summary.seconds:.1f} s ({summary.requests} calls, {summary.cache_hits} cached)",
        *format_status(run_status(run))[1:3],
        f"run directory (ledger, prompts, raw outputs, normalised HQ): {run}",
        f"exported {report['written']} pairs as a raw layout for `ggt build`: {exported}",
    ]
