"""`ggt build`: a raw layout -> a Hub-ready dataset folder that `load_dataset` reads with no code of ours.

    DIR/README.md                                      card (YAML configs + dataset_info, prose)
    DIR/data/{category}/{split}-XXXXX-of-YYYYY.parquet image bytes copied as stored
    DIR/build_report.json                              skipped pairs with reasons, conversions

Pairs are validated in worker processes (header, integrity, sizes) and written by streaming, one
row group at a time, so memory stays flat however large RAW is. A shard whose inputs have not
changed since the last build is reused. Bad pairs are skipped and reported; with `strict=True`
the first one raises BadInputError (exit code 2 from the CLI).

Example:
    >>> from ggt_datasets.build import build_dataset
    >>> report = build_dataset("raw", "ggt-100k")           # doctest: +SKIP
    >>> import datasets
    >>> ds = datasets.load_dataset("ggt-100k", "rain")     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ggt_datasets import schema
from ggt_datasets.cards.dataset import write_dataset_card
from ggt_datasets.images import ImageError, ImageInfo, encode_png, inspect_image, open_image, to_rgb
from ggt_datasets.raw import Problem, RawPair, read_jsonl, read_reviews, scan_raw

BUILD_VERSION = "1"  # bump when the written bytes of a shard change for the same inputs
MANIFEST = ".ggt_build.json"
REPORT = "build_report.json"
QC_FILE = "qc.jsonl"  # written by `ggt qc` beside a raw layout
MIN_SIDE, MAX_SIDE = 8, 16384
ROW_GROUP_BYTES = 32 << 20
QC_SCORE_COLUMNS = {"structure_ssim": "qc_structure_ssim", "chroma_drift": "qc_chroma_drift",
                    "nr_gain": "qc_nr_gain", "vlm_d": "qc_vlm_d", "vlm_f": "qc_vlm_f"}


class BadInputError(ValueError):
    """A bad pair met with strict=True; the message names the file."""


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


@dataclass
class CheckedPair:
    """A pair after validation: its files' bytes and header info, or the problem found."""

    pair: RawPair
    lq: ImageInfo | None = None
    hq: ImageInfo | None = None
    lq_bytes: bytes = b""
    hq_bytes: bytes = b""
    problem: Problem | None = None


def check_pair(pair: RawPair, verify: str = "fast") -> CheckedPair:
    """Validate one pair, reading each file once: both present and readable, sane sizes,
    HQ = s x LQ for an integer s. The bytes read are kept for writing."""
    def bad(path: Path | str, reason: str) -> CheckedPair:
        return CheckedPair(pair, problem=Problem(str(path), reason, pair.id, pair.split, pair.category))

    if pair.hq is None:
        return bad(pair.lq.parent.parent / "hq" / f"{pair.id}.png", "missing HQ file (no file with this id in hq/)")
    try:
        lq_bytes, hq_bytes = pair.lq.read_bytes(), pair.hq.read_bytes()
        lq = inspect_image(lq_bytes, verify, name=str(pair.lq))
        hq = inspect_image(hq_bytes, verify, name=str(pair.hq))
    except ImageError as err:
        return bad(str(err).split(": ", 1)[0], str(err).split(": ", 1)[-1])
    except OSError as err:
        return bad(err.filename or pair.lq, f"cannot read file ({err.strerror})")
    for path, info in ((pair.lq, lq), (pair.hq, hq)):
        if min(info.size) < MIN_SIDE or max(info.size) > MAX_SIDE:
            return bad(path, f"size {info.width}x{info.height} outside {MIN_SIDE}..{MAX_SIDE} px")
    scale = hq.width // lq.width
    if scale < 1 or hq.width != scale * lq.width or hq.height != scale * lq.height:
        return bad(pair.hq, f"HQ {hq.width}x{hq.height} is neither the LQ size {lq.width}x{lq.height} nor an integer multiple of it")
    return CheckedPair(pair, lq, hq, lq_bytes, hq_bytes)


def _image_cell(path: Path, data: bytes, info: ImageInfo, item_id: str, converted: list[dict]) -> dict:
    """{"bytes", "path"} for the parquet Image column: the file as stored, or RGB PNG when it must be converted."""
    if info.stored_as_is:
        return {"bytes": data, "path": f"{item_id}{path.suffix.lower()}"}
    converted.append({"path": str(path), "mode": info.mode, "exif_orientation": info.orientation})
    return {"bytes": encode_png(to_rgb(open_image(data, str(path)))), "path": f"{item_id}.png"}


def _row(c: CheckedPair, qc: dict, converted: list[dict]) -> dict:
    meta = dict(c.pair.metadata)
    row = {schema.ID: c.pair.id, schema.LQ: _image_cell(c.pair.lq, c.lq_bytes, c.lq, c.pair.id, converted),
           schema.HQ: _image_cell(c.pair.hq, c.hq_bytes, c.hq, c.pair.id, converted),
           schema.CATEGORY: schema.CATEGORIES.index(c.pair.category)}
    for name in schema.PROVENANCE_COLUMNS:
        value = meta.pop(name, None)
        row[name] = None if value is None else str(value)
    for name in schema.QC_COLUMNS:
        value = meta.pop(name, None)
        row[name] = None if value is None else float(value)
    for key, column in QC_SCORE_COLUMNS.items():
        if qc.get("scores", {}).get(key) is not None:
            row[column] = float(qc["scores"][key])
    for key in ("id", "split", "category"):
        meta.pop(key, None)
    row[schema.EXTRA] = json.dumps(meta, sort_keys=True) if meta else None
    return row


def _fingerprint(pairs: list[RawPair], qc: dict[tuple, dict], verify: str) -> str:
    h = hashlib.sha256(f"{BUILD_VERSION}|{verify}".encode())
    for pair in pairs:
        for path in (pair.lq, pair.hq):
            st = path.stat()
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}|".encode())
        h.update(json.dumps([pair.id, pair.metadata, qc.get(pair.key, {}).get("scores")], sort_keys=True, default=str).encode())
    return h.hexdigest()


@dataclass
class ShardJob:
    """One parquet shard to write: where, which pairs, and how to check them."""

    path: Path
    pairs: list[RawPair]
    qc: dict[tuple, dict]
    verify: str
    strict: bool


@dataclass
class ShardResult:
    rows: int = 0
    skipped: list[dict] = field(default_factory=list)
    converted: list[dict] = field(default_factory=list)


def write_shard(job: ShardJob) -> ShardResult:
    """Check each pair of the shard and stream the good ones into job.path (temp file, then rename).

    A shard left with no good pair is not written. With job.strict the first bad pair raises
    BadInputError naming the file.
    """
    arrow_schema = schema.FEATURES.arrow_schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": schema.FEATURES.to_dict()}})})
    small_columns = [name for name in schema.FEATURES if name not in (schema.LQ, schema.HQ)]
    result, rows, size = ShardResult(), [], 0
    tmp = job.path.with_name(job.path.name + ".tmp")
    # Image bytes are PNG/JPEG already: compressing, dictionary-encoding or taking min/max
    # statistics of them costs time and gains nothing.
    with pq.ParquetWriter(tmp, arrow_schema, compression="NONE", use_dictionary=small_columns,
                          write_statistics=small_columns) as writer:
        for pair in job.pairs:
            c = check_pair(pair, job.verify)
            if c.problem is not None:
                if job.strict:
                    raise BadInputError(f"{c.problem.path}: {c.problem.reason} (--strict stops at the first bad pair; drop it to skip and report)")
                result.skipped.append(c.problem.as_dict())
                continue
            rows.append(_row(c, job.qc.get(pair.key, {}), result.converted))
            result.rows += 1
            size += len(rows[-1][schema.LQ]["bytes"]) + len(rows[-1][schema.HQ]["bytes"])
            if size >= ROW_GROUP_BYTES:
                writer.write_table(pa.Table.from_pylist(rows, schema=arrow_schema))
                rows, size = [], 0
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=arrow_schema))
    if result.rows:
        os.replace(tmp, job.path)
    else:
        tmp.unlink()
        job.path.unlink(missing_ok=True)
    return result


def _plan_shards(pairs: list[RawPair], max_bytes: int) -> list[list[RawPair]]:
    shards, current, size = [], [], 0
    for pair in pairs:
        n = pair.lq.stat().st_size + pair.hq.stat().st_size
        if current and size + n > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(pair)
        size += n
    return shards + ([current] if current else [])


def _qc_decisions(raw: Path) -> dict[tuple, dict]:
    """(split, category, id) -> the latest `ggt qc` row, with a manual review decision taking precedence."""
    rows = read_jsonl(raw / QC_FILE) if (raw / QC_FILE).is_file() else []
    qc = {(r.get("split"), r.get("category"), str(r.get("id"))): r for r in rows}
    for item_id, decision in read_reviews(raw).items():
        for key in [k for k in qc if k[2] == item_id] or [(None, None, item_id)]:
            qc.setdefault(key, {})["review"] = decision
    return qc


def _decision(qc_row: dict) -> str:
    return qc_row.get("review") if qc_row.get("review") in ("accept", "reject") else qc_row.get("decision", "accept")


@dataclass
class BuildReport:
    raw: str
    out: str
    pairs_found: int = 0
    pairs_written: int = 0
    skipped: list[dict] = field(default_factory=list)
    rejected_by_qc: list[dict] = field(default_factory=list)
    converted: list[dict] = field(default_factory=list)
    shards_written: int = 0
    shards_reused: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        line = (f"built {self.pairs_written} of {self.pairs_found} pairs into {self.out} "
                f"({self.shards_written} shards written, {self.shards_reused} reused)")
        if self.skipped:
            line += f"; skipped {len(self.skipped)} bad pair(s), see {Path(self.out) / REPORT}"
        if self.rejected_by_qc:
            line += f"; left out {len(self.rejected_by_qc)} pair(s) rejected by QC/review"
        return line


def build_dataset(raw: str | os.PathLike, out: str | os.PathLike, *, max_shard_size: str | int = "500MB",
                  strict: bool = False, verify: str = "fast", include_rejected: bool = False,
                  num_proc: int | None = None, repo_id: str | None = None, progress: bool = True) -> BuildReport:
    """Build the dataset folder `out` from the raw layout `raw`; see the module docstring."""
    raw, out = Path(raw), Path(out)
    if verify not in ("fast", "full"):
        raise ValueError(f"verify must be 'fast' or 'full', got {verify!r}")
    max_bytes = parse_size(max_shard_size)
    inside = [out.resolve(), *out.resolve().parents]
    if raw.resolve() == out.resolve() or any(raw.resolve() / s in inside for s in schema.SPLITS):
        raise ValueError(f"--out {out} must not be the raw folder or inside its split folders")
    pairs, problems = scan_raw(raw)
    report = BuildReport(str(raw), str(out), pairs_found=len(pairs))

    # Problems found without reading any image: unusable files, metadata, duplicate ids, no HQ.
    meta_problems = {p.id: p for p in problems if p.id and Path(p.path).name == "metadata.jsonl"}
    qc, seen, candidates = _qc_decisions(raw), {}, []
    for pair in pairs:
        if pair.id in meta_problems:
            continue  # its metadata row is already reported
        elif (pair.split, pair.id) in seen:
            problems.append(Problem(str(pair.lq), f"id {pair.id!r} also used in {seen[(pair.split, pair.id)]}/; ids must be unique in a split", pair.id, pair.split, pair.category))
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

    # Plan shards from file sizes, then write the ones whose inputs changed, in parallel.
    manifest_path = out / MANIFEST
    old_manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest, jobs = {}, []
    for cat in schema.CATEGORIES:
        for split in schema.SPLITS:
            shards = _plan_shards([p for p in candidates if p.category == cat and p.split == split], max_bytes)
            for i, shard in enumerate(shards):
                rel = f"data/{cat}/{split}-{i:05d}-of-{len(shards):05d}.parquet"
                entry = {"fingerprint": _fingerprint(shard, qc, verify), "category": cat, "split": split}
                old = old_manifest.get(rel) if isinstance(old_manifest.get(rel), dict) else {}
                if old.get("fingerprint") == entry["fingerprint"] and (out / rel).is_file() == bool(old.get("rows")):
                    manifest[rel] = old
                    report.shards_reused += 1
                else:
                    manifest[rel] = entry
                    shard_qc = {p.key: qc[p.key] for p in shard if p.key in qc}  # workers get only their rows
                    jobs.append((rel, ShardJob(out / rel, shard, shard_qc, verify, strict)))
    for _, job in jobs:
        job.path.parent.mkdir(parents=True, exist_ok=True)
    processes = min(num_proc or os.cpu_count() or 1, len(jobs), 8)
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    with ctx.Pool(processes) if processes > 1 else _InlinePool() as pool:
        results = pool.imap(write_shard, [job for _, job in jobs])
        for (rel, _), result in tqdm(zip(jobs, results), total=len(jobs), desc="ggt build", unit="shard", disable=not progress):
            manifest[rel].update(rows=result.rows, skipped=result.skipped, converted=result.converted)
            report.shards_written += 1
    for rel, entry in manifest.items():
        report.pairs_written += entry["rows"]
        report.skipped += entry["skipped"]
        report.converted += entry["converted"]
        if entry["rows"]:
            per_cat = report.counts.setdefault(entry["category"], {})
            per_cat[entry["split"]] = per_cat.get(entry["split"], 0) + entry["rows"]
    for stale in (out / "data").rglob("*.parquet") if (out / "data").is_dir() else []:
        if stale.relative_to(out).as_posix() not in manifest:
            stale.unlink()
    report.counts = {schema.DEFAULT_CONFIG: {s: sum(c.get(s, 0) for c in report.counts.values()) for s in schema.SPLITS},
                     **{c: report.counts[c] for c in schema.CATEGORIES if c in report.counts}}
    write_dataset_card(out, report.counts, repo_id=repo_id or out.name, converted=len(report.converted))
    (out / REPORT).write_text(json.dumps(report.__dict__, indent=2))
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return report


class _InlinePool:
    """The Pool interface, in-process: small builds do not pay for starting workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items, chunksize=1):
        return map(fn, items)


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build", help="turn a raw layout into a Hub-ready dataset folder",
        description="Turn RAW/{train,test}/{category}/{lq,hq}/ID.* (+ metadata.jsonl, qc.jsonl, review.jsonl) "
        "into DIR/data/{category}/{split}-*.parquet and DIR/README.md, readable with "
        "datasets.load_dataset(DIR, CONFIG). Bad pairs are skipped and listed in DIR/build_report.json.")
    p.add_argument("raw", help="raw layout folder")
    p.add_argument("--out", required=True, help="dataset folder to write (e.g. ggt-100k)")
    p.add_argument("--max-shard-size", default="500MB", help="largest parquet shard (default 500MB)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad pair (exit code 2) instead of skipping it")
    p.add_argument("--verify", choices=("fast", "full"), default="fast",
                   help="fast: headers, PNG CRCs, JPEG end markers; full: decode every pixel (slower)")
    p.add_argument("--include-rejected", action="store_true", help="keep pairs that `ggt qc` or review rejected")
    p.add_argument("--num-proc", type=int, default=None, help="worker processes for checking (default: CPU count)")
    p.add_argument("--repo-id", default=None, help="the Hub id to show in the card's examples (default: the folder name)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    report = build_dataset(args.raw, args.out, max_shard_size=args.max_shard_size, strict=args.strict,
                           verify=args.verify, include_rejected=args.include_rejected, num_proc=args.num_proc,
                           repo_id=args.repo_id)
    print(report.summary())
    return 0
