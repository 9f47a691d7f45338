"""`ggt synth`, `ggt status` and `ggt export`: the synthesis commands.

    ggt synth LQ_DIR --run RUN --generator gemini [--prompt-mode adaptive --vlm gemini] ...
    ggt synth LQ_DIR --run RUN --from-card DATASET_OR_RAW     # the configuration a dataset was made with
    ggt status RUN [--json]
    ggt export RUN --out RAW [--include-rejected]              # also writes RAW/ggt_config.json

API keys come from GEMINI_API_KEY / GOOGLE_API_KEY / OPENAI_API_KEY and are never written to
the run directory, its log (RUN/synth.log) or the terminal. With a loopback --base-url (a local
test server) no key is needed. A refused key, or a backend that cannot start, stops the run at
once with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ggt_datasets import schema

GENERATOR_NAMES = ("gemini", "openai", "diffusers", "classical")
LOG_FILE = "synth.log"


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="restore LQ photos with a generative model into HQ targets (resumable)",
        description="Make HQ targets for LQ photos with an image generator. LQ_DIR is LQ_DIR/<category>/... "
        "or a flat folder with --category. Rerun the same command to resume; paid answers are cached.")
    p.add_argument("lq_dir", type=Path, metavar="LQ_DIR")
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="run directory (ledger, artefacts)")
    p.add_argument("--generator", choices=GENERATOR_NAMES, help="image generator (default gemini)")
    p.add_argument("--model", help="model id (default: the generator's in models.yaml)")
    p.add_argument("--prompt-mode", choices=("fixed", "adaptive"), help="default fixed")
    p.add_argument("--from-card", type=Path, metavar="DIR",
                   help="re-run the configuration in DIR/ggt_config.json (a built dataset or a raw folder): "
                   "generator, model, prompt mode and templates, VLM, scale")
    p.add_argument("--prompt-dir", type=Path,
                   help="folder of {category}.txt / adaptive_system.txt overriding templates")
    p.add_argument("--vlm", choices=("gemini", "openai"), help="VLM writing adaptive prompts")
    p.add_argument("--vlm-model", help="VLM model id (default: models.yaml)")
    p.add_argument("--vlm-base-url", help="VLM endpoint (default: --base-url when the VLM is the generator's kind)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--rpm", type=float, help="requests per minute over all workers (default: unlimited)")
    p.add_argument("--base-url", help="API endpoint, e.g. a proxy or a local test server")
    p.add_argument("--api-version", help="Gemini API version (default from models.yaml: v1beta)")
    p.add_argument("--config", type=Path, help="YAML merged over the backends' models.yaml (ids, prices)")
    p.add_argument("--shard", help="i/N: take only this shard of the items (by content hash)")
    p.add_argument("--limit", type=int, help="process at most K pending items this time")
    p.add_argument("--category", choices=schema.CATEGORIES, help="category of a flat LQ_DIR (or only this one)")
    p.add_argument("--split", choices=schema.SPLITS, default="train", help="split of new items (default train)")
    p.add_argument("--scale", type=float, help="HQ size = scale x LQ size (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="retry items that failed")
    p.add_argument("--retry-blocked", action="store_true", help="retry items the backend refused (safety)")
    p.add_argument("--batch", action="store_true", help="Gemini batch jobs (about half price, hours)")
    p.add_argument("--poll-interval", type=float, default=30.0, help="seconds between batch job polls")
    p.add_argument("--max-attempts", type=int, default=5, help="tries per item before it is failed (default 5)")
    p.add_argument("--timeout", type=float, help="seconds per request (default from models.yaml)")
    p.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds; doubles (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    s = subparsers.add_parser("status", help="counts, cost and errors of a synthesis run",
                              description="Counts by state, cost so far, error reasons by count, throughput.")
    s.add_argument("run", type=Path, metavar="RUN_DIR")
    s.add_argument("--json", action="store_true",
                   help="print JSON (keys total, pending, done, blocked, failed, cost_usd, requests, ...)")
    s.set_defaults(func=_status)

    e = subparsers.add_parser("export", help="write a run's done items as a raw layout for `ggt build`",
                              description="Write done items to RAW/{split}/{category}/{lq,hq}/ID.*, "
                              "RAW/metadata.jsonl and RAW/ggt_config.json.")
    e.add_argument("run", type=Path, metavar="RUN_DIR")
    e.add_argument("--out", type=Path, required=True, metavar="RAW")
    e.add_argument("--include-rejected", action="store_true", help="also items rejected by QC or review")
    e.set_defaults(func=_export)


def _public_url(url: str | None) -> str | None:
    """An endpoint without credentials or query, as stored in run.json."""
    if not url:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class RedactFilter(logging.Filter):
    """Replaces API keys in every log record (formatted first) by ***."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        from ggt_datasets.synth.runner import redact

        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


# What --from-card sets; giving one of these flags too is refused (one source of truth).
CARD_FLAGS = {"generator": "--generator", "model": "--model", "prompt_mode": "--prompt-mode", "vlm": "--vlm",
              "vlm_model": "--vlm-model", "scale": "--scale", "prompt_dir": "--prompt-dir"}


def _apply_card(args: argparse.Namespace) -> dict[str, str] | None:
    """Fill args from --from-card DIR; returns the card's templates (None without --from-card)."""
    from ggt_datasets.synth.export import read_card_config

    if args.from_card is None:
        return None
    card = read_card_config(args.from_card)
    given = [flag for key, flag in CARD_FLAGS.items() if getattr(args, key) is not None]
    if given:
        raise ValueError(f"--from-card {args.from_card} sets the configuration; drop {', '.join(given)}")
    synth = card["synth"]
    for key in ("generator", "model", "prompt_mode", "vlm", "vlm_model", "scale"):
        setattr(args, key, synth.get(key))
    if args.api_version is None:
        args.api_version = synth.get("api_version")
    return dict(synth["templates"])


def _synth(args: argparse.Namespace) -> int:
    from ggt_datasets.backends import FatalBackendError, make_generator, make_vlm
    from ggt_datasets.synth.config import SynthConfig, parse_shard
    from ggt_datasets.synth.export import write_run_templates
    from ggt_datasets.synth.inputs import register_inputs
    from ggt_datasets.synth.ledger import Ledger, check_settings
    from ggt_datasets.synth.prompts import check_templates, load_templates, template_hashes
    from ggt_datasets.synth.runner import run_synthesis

    card_templates = _apply_card(args)
    args.generator = args.generator or "gemini"
    args.prompt_mode = args.prompt_mode or "fixed"
    args.scale = 1 if args.scale is None else args.scale
    if args.poll_interval <= 0:
        raise ValueError(f"--poll-interval must be positive seconds, got {args.poll_interval}")
    config = SynthConfig(
        prompt_mode=args.prompt_mode, prompt_dir=str(args.prompt_dir) if args.prompt_dir else None,
        concurrency=args.concurrency, rpm=args.rpm, max_attempts=args.max_attempts, scale=args.scale,
        retry_failed=args.retry_failed, retry_blocked=args.retry_blocked,
        shard=parse_shard(args.shard) if args.shard else None, limit=args.limit, backoff_base=args.backoff,
        progress=not args.no_progress, backend_config=str(args.config) if args.config else None)
    if args.prompt_mode == "adaptive" and not args.vlm:
        raise ValueError("--prompt-mode adaptive needs --vlm gemini|openai (and optionally --vlm-model)")
    if args.batch and args.generator != "gemini":
        raise ValueError(f"--batch works with --generator gemini only, not {args.generator}")
    templates = load_templates(config.prompt_dir)
    if card_templates is not None:
        templates = check_templates({**templates, **card_templates}, f"{args.from_card} ggt_config.json")
    opts = dict(model=args.model, base_url=args.base_url, api_version=args.api_version, timeout=args.timeout,
                config_path=config.backend_config)
    generator = make_generator(args.generator, **opts)
    vlm = None
    if args.prompt_mode == "adaptive":
        same = args.vlm == args.generator
        vlm = make_vlm(args.vlm, model=args.vlm_model, base_url=args.vlm_base_url or (args.base_url if same else None),
                       api_version=args.api_version if args.vlm == "gemini" else None, timeout=args.timeout,
                       config_path=config.backend_config)
    fixed = args.prompt_mode == "fixed"
    used = {k: v for k, v in templates.items() if (k in schema.CATEGORIES) == fixed}
    settings = {
        "generator": generator.name, "model": generator.model, "prompt_mode": args.prompt_mode,
        "vlm": vlm.name if vlm else None, "vlm_model": vlm.model if vlm else None, "scale": args.scale,
        "templates": template_hashes(used),
        "base_url": _public_url(args.base_url), "api_version": args.api_version,
        "concurrency": args.concurrency, "rpm": args.rpm, "batch": args.batch,
    }
    args.run.mkdir(parents=True, exist_ok=True)
    logged = _log_to(args.run / LOG_FILE)
    try:
        log = logging.getLogger("ggt_datasets.synth")
        for warning in check_settings(args.run, settings):
            log.warning(warning)
        write_run_templates(args.run, used)
        with Ledger(args.run) as ledger:
            found = register_inputs(ledger, args.lq_dir, args.category, args.split, progress=not args.no_progress)
            log.info("inputs: %s", found)
            print(f"ggt synth: {found['found']} LQ file(s), {found['new']} new, {found['bad']} unreadable "
                  f"(recorded as failed), {found['duplicates']} duplicate(s)")
            try:
                if args.batch:
                    from ggt_datasets.backends.gemini import GeminiBatchClient
                    from ggt_datasets.synth.batch import run_batch

                    client = GeminiBatchClient(**{k: v for k, v in opts.items() if v is not None})
                    summary = run_batch(ledger, generator, client, config, vlm, templates,
                                        poll_interval=args.poll_interval)
                else:
                    summary = run_synthesis(ledger, generator, config, vlm, templates)
            except FatalBackendError as err:
                return _fatal(log, str(err))
            counts = ledger.counts()
        if summary.fatal:
            return _fatal(log, summary.fatal)
        vlm_part = f", {summary.vlm_requests} VLM request(s)" if summary.vlm_requests else ""
        line = (f"ggt synth: {summary.done} done, {summary.blocked} blocked, {summary.failed} failed, "
                f"{summary.left_pending} left pending of {summary.selected} selected in {summary.seconds:.1f} s; "
                f"{summary.requests} request(s){vlm_part}, {summary.cache_hits} cached, "
                f"${summary.total_cost_usd:.4f}")
        log.info(line)
        print(line)
        print(f"ggt synth: run {args.run}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if summary.interrupted:
            print("ggt synth: interrupted; rerun the same command to resume")
            return 130
        return 0
    finally:
        _unlog(*logged)


def _fatal(log: logging.Logger, reason: str) -> int:
    """A run stopped by a fault no item can get past: one line on stderr, exit 2."""
    import sys

    from ggt_datasets.synth.runner import redact

    log.info("stopped: %s", reason)  # the file log; the stderr handler shows the line below only
    print(f"ggt synth: error: {redact(reason)}; nothing was marked failed, rerun once it is fixed",
          file=sys.stderr)
    return 2


def _log_to(path: Path) -> tuple[logging.Logger, list[logging.Handler], tuple[int, bool]]:
    """Log ggt_datasets at INFO to RUN/synth.log, and as before to stderr; keys redacted in both."""
    import sys

    logger = logging.getLogger("ggt_datasets")
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.getLogger().getEffectiveLevel())
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handlers = [file_handler, stderr]
    for h in handlers:
        h.addFilter(RedactFilter())
        logger.addHandler(h)
    state = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handlers, state


def _unlog(logger: logging.Logger, handlers: list[logging.Handler], state: tuple[int, bool]) -> None:
    for h in handlers:
        logger.removeHandler(h)
        h.close()
    logger.setLevel(state[0])
    logger.propagate = state[1]


def _status(args: argparse.Namespace) -> int:
    from ggt_datasets.synth.export import format_status, run_status

    status = run_status(args.run)
    print(json.dumps(status, indent=2, sort_keys=True) if args.json else "\n".join(format_status(status)))
    return 0


def _export(args: argparse.Namespace) -> int:
    from ggt_datasets.synth.export import export_run

    report = export_run(args.run, args.out, include_rejected=args.include_rejected)
    print(f"ggt export: wrote {report['written']} of {report['done']} done item(s) to {report['out']}"
          f" ({report['rejected']} rejected left out, {len(report['problems'])} problem(s))")
    for problem in report["problems"]:
        print(f"  {problem['id']}: {problem['reason']}")
    return 0
