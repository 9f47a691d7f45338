"""`ggt build`: a raw layout or any paired release -> a Hub-ready dataset folder that `load_dataset` reads.

    DIR/README.md                                      card (YAML configs + dataset_info, prose)
    DIR/data/{category}/{split}-XXXXX-of-YYYYY.parquet image bytes copied as stored
    DIR/build_report.json                              skipped pairs with reasons, conversions, fits
    DIR/ggt_config.json                                copied from SRC when `ggt export` wrote one
    DIR/.ggt_build_manifest.json                       the files this build owns (and shard fingerprints)
    DIR/.complete                                      written last: the folder is a finished build

SRC is read in its own layout (`layout="raw"`, the default: RAW/{split}/{category}/{lq,hq}/ID.*)
or through a layout (`"auto"` or a YAML file, see ggt_datasets.layouts); no intermediate copy is
made. Pairs are checked in worker processes (and threads in each, a few pairs ahead of the
writer) and written by streaming, so memory stays flat. SRC is listed in one directory walk and
each input file is stat'ed once and read once. Shards are written in a staging folder named
with the run's token and renamed into data/ when complete (one fsync each). A shard whose
inputs have not changed is reused, so a killed build resumes. A folder holding files
this build did not write is refused unless overwrite=True. Bad pairs are skipped and reported;
with strict=True the first one raises BadInputError (exit code 2 from the CLI).

Example:
    >>> from ggt_datasets.build import build_dataset
    >>> report = build_dataset("GGT-100K-release/GGT-100K", "ggt-100k", layout="auto")  # doctest: +SKIP
    >>> import datasets
    >>> ds = datasets.load_dataset("ggt-100k", "rain")                                  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ggt_datasets import schema
from ggt_datasets.atomic import COMPLETE_MARKER, WriteError, atomic_write_bytes, atomic_write_json, mark_complete
from ggt_datasets.build_owner import (  # noqa: F401  (MANIFEST: part of this module's API)
    LEGACY_MANIFEST,
    MANIFEST,
    check_free_space,
    check_ownership,
    read_manifest,
    remove_empty_dirs,
    staging_dir,
)
from ggt_datasets.build_shard import (  # noqa: F401  (check_pair, BadInputError: part of this module's API)
    FIT_MODES,
    VERIFY_MODES,
    BadInputError,
    CheckedPair,
    ShardJob,
    ShardResult,
    check_pair,
    write_shard,
)
from ggt_datasets.cards.dataset import write_dataset_card
from ggt_datasets.layouts import (
    Layout,
    LayoutMatch,
    image_files,
    match_layout,
    meta_info_files,
    resolve_layout,
    source_files,
)
from ggt_datasets.raw import Problem, RawPair, scan_raw

BUILD_VERSION = "2"  # bump when the written bytes of a shard change for the same inputs
REPORT = "build_report.json"
CONFIG_FILE = "ggt_config.json"  # written by `ggt export`; copied and summarised in the card
log = logging.getLogger(__name__)


def parse_size(text: str | int) -> int:
    """'500MB' -> 500_000_000 bytes; plain integers are bytes."""
    if isinstance(text, int):
        return text
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "B": 1}
    s = text.strip().upper()
    for unit, factor in units.items():
        if s.endswith(unit) and s[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(s[: -len(unit)]) * factor)
    if s.isdigit():
        return int(s)
    raise ValueError(f"--max-shard-size: cannot read {text!r}; use e.g. 500MB, 2GB or a byte count")


def _file_stats(pairs: list[RawPair]) -> dict[Path, os.stat_result]:
    """One stat per input file, shared by the fingerprints, the shard plan and the free-space check."""
    return {path: path.stat() for pair in pairs for path in (pair.lq, pair.hq)}


def _fingerprint(
    pairs: list[RawPair], qc: dict[tuple, dict], verify: str, fit_hq: str, stats: dict[Path, os.stat_result]
) -> str:
    h = hashlib.sha256(f"{BUILD_VERSION}|{verify}|{fit_hq}".encode())
    for pair in pairs:
        for path in (pair.lq, pair.hq):
            st = stats[path]
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}|".encode())
        h.update(
            json.dumps(
                [pair.id, pair.metadata, qc.get(pair.key, {}).get("scores")], sort_keys=True, default=str
            ).encode()
        )
    return h.hexdigest()


def _plan_shards(pairs: list[RawPair], max_bytes: int, stats: dict[Path, os.stat_result]) -> list[list[RawPair]]:
    shards, current, size = [], [], 0
    for pair in pairs:
        n = stats[pair.lq].st_size + stats[pair.hq].st_size
        if current and size + n > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(pair)
        size += n
    return shards + ([current] if current else [])


def _qc_decisions(raw: Path, pairs: list[RawPair], problems: list[Problem], strict: bool) -> dict[tuple, dict]:
    """(split, category, id) -> the latest `ggt qc` row, a manual review decision taking precedence.

    Read through the raw pair store, so build and the review page agree on what a decision
    applies to: a review row naming its split and category is that pair's; an old row with only
    an id counts for every pair with that id; the later line wins."""
    from ggt_datasets.pairstore import RawPairStore

    store = RawPairStore(raw)
    qc, reviews = store.qc_rows(), store.reviews()
    if strict and store.problems:
        raise ValueError(f"{store.problems[0].path}: {store.problems[0].reason}")
    problems += store.problems
    none = (-1, "")
    out: dict[tuple, dict] = {}
    for pair in pairs:
        row = dict(qc.get(pair.key, {}))
        decision = max(reviews.get(pair.key, none), reviews.get(pair.id, none))[1]
        if decision:
            row["review"] = decision
        if row:
            out[pair.key] = row
    return out


def _decision(qc_row: dict) -> str:
    return qc_row.get("review") if qc_row.get("review") in ("accept", "reject") else qc_row.get("decision", "accept")


def _is_bad_record(p: Problem) -> bool:
    return bool(re.search(r"\.jsonl:\d+$", p.path))


@dataclass
class BuildReport:
    raw: str
    out: str
    layout: dict | str = "raw"
    pairs_found: int = 0
    pairs_written: int = 0
    skipped: list[dict] = field(default_factory=list)
    bad_records: list[dict] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)
    unmatched_count: int = 0
    rejected_by_qc: list[dict] = field(default_factory=list)
    converted: list[dict] = field(default_factory=list)
    fitted: list[dict] = field(default_factory=list)
    fit_hq: str = "skip"
    shards_written: int = 0
    shards_reused: int = 0
    bytes_needed: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        line = (
            f"built {self.pairs_written} of {self.pairs_found} pairs into {self.out} "
            f"({self.shards_written} shards written, {self.shards_reused} reused)"
        )
        if self.fitted:
            line += f"; {len(self.fitted)} HQ(s) fitted onto the LQ geometry (--fit-hq resize)"
        if self.skipped:
            line += f"; skipped {len(self.skipped)} bad pair(s), see {Path(self.out) / REPORT}"
        geometry = [s for s in self.skipped if "integer multiple" in s.get("reason", "")]
        if geometry and self.fit_hq == "skip":
            line += f" ({len(geometry)} for HQ geometry; --fit-hq resize would fit them)"
        if self.bad_records:
            line += f"; {len(self.bad_records)} malformed jsonl line(s) skipped"
        if self.unmatched_count:
            line += f"; {self.unmatched_count} file(s) matched no pattern of the layout"
        if self.rejected_by_qc:
            line += f"; left out {len(self.rejected_by_qc)} pair(s) rejected by QC/review"
        return line


def find_pairs(
    src: Path, layout: str, split: str | None, category: str | None, strict: bool
) -> tuple[list[RawPair], list[Problem], dict[tuple, dict], LayoutMatch | None, object]:
    """Pairs, problems and QC rows from SRC read as the raw layout or through a layout (auto / FILE.yaml)."""
    if layout == "raw":
        if split or category:
            raise ValueError(
                "--split/--category apply to --layout auto or FILE.yaml; the raw layout takes them from its folders"
            )
        pairs, problems = scan_raw(src, strict=strict)
        return pairs, problems, _qc_decisions(src, pairs, problems, strict), None, "raw"
    lay, found = _match(src, layout, split, category)
    if not found.pairs and not found.problems:
        why = "; ".join(f"{Path(p.path).relative_to(src)}: {p.reason}" for p in found.unmatched[:3])
        raise ValueError(
            f"{src}: the layout matched no pair ({found.unmatched_count} file(s) unmatched{': ' + why if why else ''})"
        )
    return found.pairs, list(found.problems), {}, found, lay


def _match(src: Path, layout: str, split: str | None, category: str | None) -> tuple[Layout, LayoutMatch]:
    """The layout (auto / FILE.yaml) resolved and matched over one directory walk of SRC."""
    files = source_files(src)
    images = image_files(src, files)
    lay = resolve_layout(src, layout, split, category, files=images, meta_infos=meta_info_files(files))
    return lay, match_layout(src, lay, images)


def dry_run(
    src: str | os.PathLike, layout: str = "auto", split: str | None = None, category: str | None = None, show: int = 10
) -> str:
    """What `ggt build --dry-run` prints: the layout as YAML (save it and pass it back as --layout FILE.yaml),
    the pairs per split and category, the first unmatched files with why. Writes nothing."""
    src = Path(src)
    if layout == "raw":
        pairs, problems = scan_raw(src)
        text, unmatched, count = "# layout: raw (RAW/{split}/{category}/{lq,hq}/ID.*)\n", problems, len(problems)
    else:
        lay, found = _match(src, layout, split, category)
        pairs, unmatched, count = (
            found.pairs,
            [*found.problems, *found.unmatched],
            len(found.problems) + found.unmatched_count,
        )
        text = lay.to_yaml()
    per: dict[tuple[str, str], int] = {}
    for p in pairs:
        per[(p.split, p.category)] = per.get((p.split, p.category), 0) + 1
    lines = [text.rstrip("\n"), "", f"# {len(pairs)} pairs"]
    lines += [f"#   {s:<6} {c:<10} {n}" for (s, c), n in sorted(per.items())]
    if count:
        lines.append(f"# {count} file(s) not used; the first {min(show, len(unmatched))}:")
        lines += [f"#   {p.path}: {p.reason}" for p in unmatched[:show]]
    return "\n".join(lines) + "\n"


def _provenance(pairs: list[RawPair], src: Path, layout_name: str) -> dict:
    """What the card says the LQ and HQ images are, from the build's metadata."""
    generators: dict[str, int] = {}
    sources: dict[str, int] = {}
    for p in pairs:
        gen = str(p.metadata.get("generator") or "not recorded")
        generators[gen] = generators.get(gen, 0) + 1
        src_kind = str(p.metadata.get("source") or "not recorded").split(":", 1)[0].split("/", 1)[0]
        sources[src_kind] = sources.get(src_kind, 0) + 1
    return {"generators": generators, "sources": sources, "src_name": src.name, "layout": layout_name}


def build_dataset(
    raw: str | os.PathLike,
    out: str | os.PathLike,
    *,
    layout: str = "raw",
    split: str | None = None,
    category: str | None = None,
    fit_hq: str = "skip",
    overwrite: bool = False,
    max_shard_size: str | int = "500MB",
    strict: bool = False,
    verify: str = "fast",
    include_rejected: bool = False,
    num_proc: int | None = None,
    repo_id: str | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build the dataset folder `out` from `raw` (raw layout, or `layout` auto / FILE.yaml); see the module doc."""
    raw, out = Path(raw), Path(out)
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
    if fit_hq not in FIT_MODES:
        raise ValueError(f"fit_hq must be one of {', '.join(FIT_MODES)}, got {fit_hq!r}")
    max_bytes = parse_size(max_shard_size)
    inside = [out.resolve(), *out.resolve().parents]
    if (
        raw.resolve() in inside
        if layout != "raw"
        else (raw.resolve() == out.resolve() or any(raw.resolve() / s in inside for s in schema.SPLITS))
    ):
        raise ValueError(f"--out {out} must not be the source folder or inside it")
    pairs, problems, qc, found, lay = find_pairs(raw, layout, split, category, strict)
    report = BuildReport(
        str(raw), str(out), layout=lay if lay == "raw" else lay.to_dict(), pairs_found=len(pairs), fit_hq=fit_hq
    )
    if found is not None:
        report.unmatched = [p.as_dict() for p in found.unmatched]
        report.unmatched_count = found.unmatched_count
    report.bad_records = [p.as_dict() for p in problems if _is_bad_record(p)]
    problems = [p for p in problems if not _is_bad_record(p)]

    # Problems found without reading any image: unusable files, metadata, duplicate ids, no HQ.
    meta_problems = {p.id: p for p in problems if p.id and Path(p.path).name == "metadata.jsonl"}
    seen, candidates = {}, []
    for pair in pairs:
        if pair.id in meta_problems:
            continue  # its metadata row is already reported
        elif (pair.split, pair.id) in seen:
            problems.append(
                Problem(
                    str(pair.lq),
                    f"id {pair.id!r} also used in {seen[(pair.split, pair.id)]}/; ids must be unique in a split",
                    pair.id,
                    pair.split,
                    pair.category,
                )
            )
        elif pair.hq is None:
            problems.append(check_pair(pair).problem)
        elif not include_rejected and _decision(qc.get(pair.key, qc.get((None, None, pair.id), {}))) == "reject":
            report.rejected_by_qc.append({"id": pair.id, "split": pair.split, "category": pair.category})
        else:
            seen[(pair.split, pair.id)] = pair.category
            candidates.append(pair)
    if strict and problems:
        p = problems[0]
        raise BadInputError(f"{p.path}: {p.reason} (--strict stops at the first bad input; drop it to skip and report)")
    report.skipped += [p.as_dict() for p in problems]

    # Which files of `out` are ours; plan shards from file sizes; reuse those whose inputs did not change.
    old = read_manifest(out)
    replace = check_ownership(out, old, overwrite)
    old_shards = old.get("shards", {})
    stats = _file_stats(candidates)
    token = secrets.token_hex(8)
    stage = staging_dir(out, token)
    shards_plan, jobs = {}, []
    for cat in schema.CATEGORIES:
        for sp in schema.SPLITS:
            shards = _plan_shards([p for p in candidates if p.category == cat and p.split == sp], max_bytes, stats)
            for i, shard in enumerate(shards):
                rel = f"data/{cat}/{sp}-{i:05d}-of-{len(shards):05d}.parquet"
                entry = {"fingerprint": _fingerprint(shard, qc, verify, fit_hq, stats), "category": cat, "split": sp}
                prev = old_shards.get(rel) if isinstance(old_shards.get(rel), dict) else {}
                if (
                    prev.get("done")
                    and prev.get("fingerprint") == entry["fingerprint"]
                    and (out / rel).is_file() == bool(prev.get("rows"))
                ):
                    shards_plan[rel] = prev
                    report.shards_reused += 1
                else:
                    shards_plan[rel] = entry
                    shard_qc = {p.key: qc[p.key] for p in shard if p.key in qc}  # workers get only their rows
                    sizes = [stats[p.lq].st_size + stats[p.hq].st_size for p in shard]
                    job = ShardJob(out / rel, shard, shard_qc, verify, strict, fit_hq, stage=stage / rel, sizes=sizes)
                    job.size = sum(sizes)
                    jobs.append((rel, job))
    report.bytes_needed = sum(job.size for _, job in jobs)
    check_free_space(out, report.bytes_needed)

    # Record what we are about to write before writing it: a killed build leaves nothing unowned.
    # The staging folder's token is recorded first, so whatever a kill leaves in it is provably ours.
    files = [f for f in old.get("files", []) if f != LEGACY_MANIFEST]
    staging = [*old.get("staging", []), token] if jobs else list(old.get("staging", []))
    manifest = {"version": BUILD_VERSION, "shards": {**old_shards, **shards_plan}, "files": files, "staging": staging}
    atomic_write_json(out / MANIFEST, manifest, indent=None)
    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    (out / LEGACY_MANIFEST).unlink(missing_ok=True)
    try:
        _run_jobs(jobs, manifest, out, num_proc, progress)
    finally:
        remove_empty_dirs(stage)  # each shard was renamed out of it (or removed with its temporary file)
    if not stage.exists():
        manifest["staging"] = [t for t in manifest["staging"] if t != token]
    report.shards_written = len(jobs)
    for rel in list(manifest["shards"]):
        if rel not in shards_plan:  # a shard of ours the inputs no longer fill
            (out / rel).unlink(missing_ok=True)
            del manifest["shards"][rel]
    for path in replace:
        if path.suffix == ".parquet":
            path.unlink()  # --overwrite: a foreign shard would be read as part of the dataset
    for entry in manifest["shards"].values():
        report.pairs_written += entry["rows"]
        report.skipped += entry["skipped"]
        report.converted += entry["converted"]
        report.fitted += entry.get("fitted", [])
        if entry["rows"]:
            per_cat = report.counts.setdefault(entry["category"], {})
            per_cat[entry["split"]] = per_cat.get(entry["split"], 0) + entry["rows"]
    report.counts = {
        schema.DEFAULT_CONFIG: {s: sum(c.get(s, 0) for c in report.counts.values()) for s in schema.SPLITS},
        **{c: report.counts[c] for c in schema.CATEGORIES if c in report.counts},
    }
    written = {"README.md", REPORT}
    ggt_config = _copy_ggt_config(raw, out, report)
    if ggt_config is not None:
        written.add(CONFIG_FILE)
    manifest["files"] = sorted(set(manifest["files"]) | written)
    atomic_write_json(out / MANIFEST, manifest, indent=None)  # owns the card before it is written
    sizes: dict[str, int] = {}
    for rel, entry in manifest["shards"].items():
        if entry["rows"]:
            n = (out / rel).stat().st_size
            sizes[entry["category"]] = sizes.get(entry["category"], 0) + n
            sizes[schema.DEFAULT_CONFIG] = sizes.get(schema.DEFAULT_CONFIG, 0) + n
    build_id = hashlib.sha256("".join(e["fingerprint"] for e in manifest["shards"].values()).encode()).hexdigest()[:16]
    write_dataset_card(
        out,
        report.counts,
        repo_id=repo_id or out.name,
        converted=len(report.converted),
        provenance=_provenance(candidates, raw, "raw" if lay == "raw" else "layout"),
        ggt_config=ggt_config,
        fitted=len(report.fitted),
        sizes=sizes,
        build_id=build_id,
    )
    atomic_write_json(out / REPORT, report.__dict__)
    mark_complete(out, {"pairs": report.pairs_written, "version": BUILD_VERSION})
    return report


def _copy_ggt_config(src: Path, out: Path, report: BuildReport) -> dict | None:
    """Copy SRC/ggt_config.json (written by `ggt export`) into the build; None when absent or unreadable."""
    path = src / CONFIG_FILE
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        config = json.loads(data)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        report.bad_records.append({"path": str(path), "reason": f"not a JSON object ({err}); not copied"})
        log.warning("%s: not a JSON object; not copied into the build", path)
        return None
    atomic_write_bytes(out / CONFIG_FILE, data)
    return config


def _run_jobs(
    jobs: list[tuple[str, ShardJob]], manifest: dict, out: Path, num_proc: int | None, progress: bool
) -> None:
    """Write the shards in worker processes, each checking its pairs in threads; each finished shard is
    recorded in the manifest at once (resumable).

    `num_proc` (default: the CPU count) sets the parallelism: min(num_proc, shards, 8) processes with
    num_proc // processes checker threads each, plus one when num_proc > 1 so that the last shard
    still running can use the cores the others freed. The largest shards start first."""
    if not jobs:
        return
    for _, job in jobs:
        job.path.parent.mkdir(parents=True, exist_ok=True)
    workers = max(1, num_proc or os.cpu_count() or 1)
    processes = min(workers, len(jobs), 8)
    for _, job in jobs:
        job.threads = max(1, workers // processes) + (1 if workers > 1 else 0)
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][1].size)
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    start, done_bytes = time.perf_counter(), 0
    bar = tqdm(total=sum(len(job.pairs) for _, job in jobs), desc="ggt build", unit="pair", disable=not progress)
    with bar, ctx.Pool(processes) if processes > 1 else _InlinePool() as pool:
        tasks = [(i, jobs[i][1]) for i in order]
        for i, result in pool.imap_unordered(_write_one, tasks):
            rel = jobs[i][0]
            manifest["shards"][rel].update(
                rows=result.rows, skipped=result.skipped, converted=result.converted, fitted=result.fitted, done=True
            )
            atomic_write_json(out / MANIFEST, manifest, indent=None)
            done_bytes += result.bytes_read
            bar.update(len(manifest["shards"][rel].get("skipped", [])) + result.rows)
            bar.set_postfix_str(f"{done_bytes / 1e6 / max(time.perf_counter() - start, 1e-9):.1f} MB/s")


class _InlinePool:
    """The Pool interface, in-process: small builds do not pay for starting workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap_unordered(self, fn, items, chunksize=1):
        return map(fn, items)


def _write_one(task: tuple[int, ShardJob]) -> tuple[int, ShardResult]:
    """write_shard for Pool.imap_unordered: the job's index comes back with its result."""
    return task[0], write_shard(task[1])


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build",
        help="turn a raw layout or a paired release into a Hub-ready dataset folder",
        description="Turn SRC into DIR/data/{category}/{split}-*.parquet and DIR/README.md, readable with "
        "datasets.load_dataset(DIR, CONFIG). SRC is our raw layout (RAW/{train,test}/{category}/{lq,hq}/ID.*, "
        "+ metadata.jsonl, qc.jsonl, review.jsonl) or, with --layout auto|FILE.yaml, any paired release "
        "(the GGT-100K download, BasicSR-style sets). Bad pairs are skipped and listed in DIR/build_report.json. "
        'A layout file: lq: "{split}/{category}/LQ/{id}.{ext}", hq: "{split}/{category}/HQ/{id}.{ext}", '
        "categories: {Hazy: haze}, splits: {Train: train}; `--dry-run` prints one to start from.",
    )
    p.add_argument("raw", metavar="SRC", help="source folder")
    p.add_argument("--out", help="dataset folder to write (e.g. ggt-100k); not needed with --dry-run")
    p.add_argument(
        "--layout",
        default="raw",
        help="raw (default: our raw layout), auto (recognise the release's conventions) or a layout YAML file",
    )
    p.add_argument(
        "--split", default=None, help="the split of every pair when the layout has no {split} (default train)"
    )
    p.add_argument("--category", default=None, help="the config of every pair when the layout has no {category}")
    p.add_argument(
        "--dry-run", action="store_true", help="print the layout (as YAML), counts and unmatched files; write nothing"
    )
    p.add_argument(
        "--fit-hq",
        choices=FIT_MODES,
        default="skip",
        help="an HQ that is not the LQ size or an integer "
        "multiple: skip it (default, reported) or resize it onto the LQ geometry as `ggt synth` does",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in --out that ggt build did not write")
    p.add_argument("--max-shard-size", default="500MB", help="largest parquet shard (default 500MB)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad pair or jsonl line (exit code 2) instead of skipping it",
    )
    p.add_argument(
        "--verify",
        choices=VERIFY_MODES,
        default="fast",
        help="fast (default): every written row decodes (PNG streams inflated, JPEG/WEBP decoded); "
        "full: Pillow decodes every image; header: headers and checksums only",
    )
    p.add_argument("--include-rejected", action="store_true", help="keep pairs that `ggt qc` or review rejected")
    p.add_argument(
        "--num-proc",
        type=int,
        default=None,
        help="parallelism of checking and writing: worker processes, with threads in each (default: CPU count)",
    )
    p.add_argument(
        "--repo-id", default=None, help="the Hub id to show in the card's examples (default: the folder name)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        print(dry_run(args.raw, args.layout, args.split, args.category), end="")
        return 0
    if not args.out:
        raise ValueError("--out DIR is required (or pass --dry-run)")
    try:
        report = build_dataset(
            args.raw,
            args.out,
            layout=args.layout,
            split=args.split,
            category=args.category,
            fit_hq=args.fit_hq,
            overwrite=args.overwrite,
            max_shard_size=args.max_shard_size,
            strict=args.strict,
            verify=args.verify,
            include_rejected=args.include_rejected,
            num_proc=args.num_proc,
            repo_id=args.repo_id,
        )
    except WriteError as err:
        print(f"ggt build: error: {err} (the previous build in {args.out}, if any, is unchanged)", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
