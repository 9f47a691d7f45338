"""The QC step of `ggt demo`: stage 1 on the demo's raw layout, a JSON + HTML report, a summary.

Example:
    >>> from ggt_datasets.qc.demo import demo
    >>> for line in demo(Path("ggt-demo/raw"), Path("ggt-demo")): print(line)  # doctest: +SKIP
"""

from __future__ import annotations

import pathlib

from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.gates import GATE_NAMES
from ggt_datasets.qc.pipeline import load_items, run_qc, write_qc_config, write_results
from ggt_datasets.qc.report import make_report, write_html, write_json


def demo(raw: pathlib.Path, out: pathlib.Path) -> list[str]:
    """Run the metric gates on `raw`, write RAW/qc.jsonl, out/qc_report.json and out/qc_report.html.

    Returns printable lines: pairs rejected per gate, the accept / reject counts, and one line on
    why restore_change rejects pairs when it does (the demo's classical generator barely restores).
    """
    config = load_config()
    results, notes = run_qc(raw, ("metric",), config, progress=False)
    write_results(raw, results)
    write_qc_config(raw, config)
    report = make_report(results, notes, config)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "qc_report.json")
    items, _ = load_items(raw)
    write_html(report, out / "qc_report.html", {it.key: (it.lq, it.hq) for it in items})
    s = report["summary"]
    lines = [f"QC (stage 1, metric gates): {s['total']} pairs, {s['accept']} accepted, {s['reject']} rejected"]
    for gate in GATE_NAMES:
        if gate in s["rejected_by"] or config.gates.get(gate) is not None:
            lines.append(f"  {gate:15s} rejected {s['rejected_by'].get(gate, 0)}")
    if s["rejected_by"].get("restore_change"):
        lines.append(
            f"  why restore_change: {s['rejected_by']['restore_change']} HQ(s) are little more than a filtered copy of"
            " the LQ (the demo's classical baseline barely changes images)"
        )
    lines += [f"  note: {n}" for n in notes]
    lines.append(f"  report: {out / 'qc_report.json'}, {out / 'qc_report.html'}")
    return lines
