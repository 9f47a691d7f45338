"""`ggt qc` (score and decide every pair) and `ggt review` (the manual review page).

Example:
    ggt qc RAW --stages metric --report qc_report.json --html qc_report.html
    ggt qc RUN --stages metric,vlm --vlm gemini --vlm-model gemini-3-flash --api-version v1beta
    ggt qc calibrate RAW_REVIEWED RUN_REVIEWED --target-false-reject 0.03 --out my.yaml
    ggt qc RAW --config my.yaml
    ggt review RAW --port 8765
    ggt review --arena RUN_A RUN_B --port 8765
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_qc_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `ggt qc` (shared with `python -m ggt_datasets.qc`)."""
    p.add_argument(
        "folder",
        nargs="+",
        metavar="FOLDER",
        help="a raw layout (RAW/{split}/{category}/lq|hq) or a `ggt synth` run directory; "
        "or `calibrate LABELLED...` to fit thresholds from reviewed pairs",
    )
    p.add_argument("--stages", default="metric", help="comma-separated: metric, vlm (default: metric)")
    p.add_argument("--config", help="YAML thresholds overriding ggt_datasets/qc/default_thresholds.yaml")
    p.add_argument("--report", help="write the JSON report here (items + summary)")
    p.add_argument("--html", help="write the HTML summary page here")
    p.add_argument("--vlm", help="judge backend for stage vlm (e.g. gemini, openai)")
    p.add_argument("--vlm-model", help="judge model id")
    p.add_argument("--base-url", help="API base URL (e.g. a proxy or a local test server)")
    p.add_argument("--api-version", help="API version (gemini: v1 or v1beta)")
    p.add_argument("--workers", type=int, default=None, help="threads for the metric gates (default: up to 4)")
    c = p.add_argument_group(
        "ggt qc calibrate LABELLED... (fit every gate's threshold from reviewed / planted pairs; "
        "a FOLDER/planted.jsonl with id and group (or pipeline) per pair makes the fit hold in every group)"
    )
    c.add_argument("--out", help="calibrate: write the fitted thresholds YAML here")
    c.add_argument("--target-false-reject", type=float, default=0.03, help="calibrate: allowed false rejection (0.03)")
    c.add_argument(
        "--min-count",
        type=int,
        default=30,
        help="calibrate: per category, fit only with at least this many accepted and rejected pairs (30)",
    )
    c.add_argument("--no-combiner", action="store_true", help="calibrate: do not fit the logistic-regression combiner")


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "qc",
        help="score every pair (metric gates, VLM judge) and decide accept/reject",
        description="Stage 1 metric gates and stage 2 VLM judge. Writes RAW/qc.jsonl (raw layout) or the run's "
        "ledger, and optionally a JSON report and an HTML summary. For many processes: "
        "accelerate launch -m ggt_datasets.qc FOLDER ...",
    )
    add_qc_arguments(p)
    p.set_defaults(func=run_qc_command)
    r = subparsers.add_parser(
        "review",
        help="serve the manual review page (or the generator arena) on 127.0.0.1",
        description="Open http://127.0.0.1:PORT/ and press a (accept), r (reject), s (skip), arrows to move. "
        "Decisions go to the run's ledger or RAW/review.jsonl at once. --arena DIR DIR ...: compare "
        "generators on the same LQ photos (answers in arena.jsonl in the first folder).",
    )
    r.add_argument("folder", nargs="?", help="raw layout or run directory to review")
    r.add_argument("--arena", nargs="+", metavar="DIR", help="two or more runs / raw layouts over the same LQ photos")
    r.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any free port)")
    r.set_defaults(func=run_review_command)


def make_judge(args: argparse.Namespace) -> Any:
    if not getattr(args, "vlm", None):
        return None
    from ggt_datasets.backends import make_vlm

    return make_vlm(args.vlm, model=args.vlm_model, base_url=args.base_url, api_version=args.api_version)


def run_qc_command(
    args: argparse.Namespace, rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None
) -> int:
    """Run QC; with world > 1 each process writes a part and rank 0 merges after `barrier()`."""
    args.folder = [args.folder] if isinstance(args.folder, str) else list(args.folder)
    if args.folder[0] == "calibrate":
        return run_calibrate(args)
    if len(args.folder) != 1:
        raise ValueError(
            f"give one folder to check, got {len(args.folder)} ({' '.join(args.folder)}); "
            "several folders are for `ggt qc calibrate LABELLED...`"
        )
    if getattr(args, "out", None):
        raise ValueError("--out is for `ggt qc calibrate LABELLED... --out FILE`; use --report / --html for a QC run")
    args.folder = args.folder[0]

    from ggt_datasets.pairstore import open_pair_store
    from ggt_datasets.qc.config import load_config
    from ggt_datasets.qc.pipeline import load_items, merge_parts, run_qc, write_part, write_qc_config, write_results
    from ggt_datasets.qc.report import make_report, write_html, write_json

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    config = load_config(args.config)
    results, notes = run_qc(
        args.folder, stages, config, make_judge(args), rank, world, args.workers, progress=rank == 0
    )
    if world > 1:
        write_part(args.folder, rank, world, results, notes)
        if barrier:
            barrier()
        elif rank == 0:
            from ggt_datasets.qc.pipeline import wait_for_parts

            wait_for_parts(args.folder, world)
        if rank != 0:
            return 0
        results, notes = merge_parts(args.folder, world)
    write_results(args.folder, results)
    write_qc_config(args.folder, config)
    report = make_report(results, notes, config, stages)
    if args.report:
        write_json(report, args.report)
    if args.html:
        items, _ = load_items(args.folder)
        write_html(report, args.html, {it.key: (it.lq, it.hq) for it in items})
    s = report["summary"]
    print(
        f"ggt qc: {s['total']} pairs, {s['accept']} accepted, {s['reject']} rejected"
        + (f" ({', '.join(f'{g}: {n}' for g, n in s['rejected_by'].items())})" if s["rejected_by"] else "")
    )
    for note in notes:
        print(f"note: {note}")
    where = open_pair_store(args.folder).qc_location
    print(f"decisions written to {where}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """`ggt qc calibrate LABELLED... --out FILE`: see ggt_datasets.qc.calibrate."""
    from ggt_datasets.qc.calibrate import run_calibrate_command

    args.labelled = args.folder[1:]
    if not args.labelled:
        raise ValueError("ggt qc calibrate: give one or more folders with reviewed pairs (or a planted set)")
    if not args.out:
        raise ValueError("ggt qc calibrate: --out FILE is required (where the fitted thresholds YAML goes)")
    return run_calibrate_command(args)


def run_review_command(args: argparse.Namespace) -> int:
    from ggt_datasets.qc.review import serve

    folders = args.arena or ([args.folder] if args.folder else [])
    if not folders:
        raise ValueError("give a folder to review, or --arena DIR DIR ...")
    if args.arena and args.folder:
        raise ValueError("give either a folder or --arena DIR DIR ..., not both")
    serve(folders, port=args.port, arena=bool(args.arena))
    return 0
