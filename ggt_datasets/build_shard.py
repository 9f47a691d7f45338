"""One parquet shard of `ggt build`: check each pair, fit or skip odd HQ geometry, stream rows out.

Verification modes (`--verify`):
  fast    (default) every written row decodes: PNG chunk CRCs plus the IDAT stream inflated
          (streaming, bounded memory) to exactly the length IHDR declares, with valid filter bytes;
          JPEG and WEBP fully decoded (cheap). The header's pixel count is checked first.
  full    every image fully decoded by Pillow.
  header  headers, PNG CRCs and JPEG end markers only (the old fast mode; rows may not decode).

Parquet is written for the Hub: row groups capped by bytes (ROW_GROUP_BYTES) and rows, a page
index, image columns as struct{bytes, path}.

Inflating PNG data is most of a build's CPU time: it goes through python-isal (Intel ISA-L, a
drop-in for zlib's decompressobj, about twice as fast here) when installed (a dependency where
it has wheels), else zlib (`images.fast_zlib`); `INFLATER` names the one in use.

Speed: pairs are read and checked in `job.threads` threads (zlib, Pillow and file reads release
the GIL) a few pairs ahead of the writer, in input order, so the rows and bytes written do not
depend on the thread count; at most `threads + 2` pairs, and no more input bytes than
AHEAD_BYTES beyond one pair, are in flight. After each row group the kernel is told to start
writing the shard out (posix_fadvise DONTNEED), so the one fsync per shard (atomic_open's) finds
little left to write and the page cache does not fill up with it.

Example:
    >>> from ggt_datasets.build_shard import check_pair
    >>> checked = check_pair(pair, verify="fast", fit_hq="resize")  # doctest: +SKIP
    >>> checked.problem, checked.fitted                                # doctest: +SKIP
    (None, 'resize 1184x864 -> 640x480')
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ggt_datasets import images, schema
from ggt_datasets.atomic import WriteError, atomic_open
from ggt_datasets.images import ImageError, ImageInfo, check_pixels, encode_png, inspect_image, open_image, to_rgb
from ggt_datasets.raw import Problem, RawPair

INFLATER = "zlib" if images.fast_zlib is zlib else "isal"

VERIFY_MODES = ("fast", "full", "header")
FIT_MODES = ("skip", "resize")
MIN_SIDE, MAX_SIDE = 8, 16384
ROW_GROUP_BYTES = 32 << 20  # well under the Hub viewer's 300 MB scan limit; bounds the writer's memory
ROW_GROUP_ROWS = 1000
FIT_MAX_ASPECT_ERROR = 0.10  # --fit-hq resize refuses HQs whose aspect ratio is further off the LQ's
INFLATE_CHUNK = 4 << 20  # most PNG bytes inflated per call (bounds the memory of the check)
INFLATE_INPUT = 256 << 10  # most compressed bytes fed per call
AHEAD_BYTES = 64 << 20  # input bytes read ahead of the writer (beyond one pair): bounds the checkers' memory
QC_SCORE_COLUMNS = schema.QC_SCORE_COLUMNS  # score name -> dataset column (defined in schema)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class BadInputError(ValueError):
    """A bad pair met with strict=True; the message names the file."""


def check_png_stream(data: bytes, label: str = "<image bytes>") -> None:
    """Inflate a PNG's IDAT stream in bounded chunks and check it holds exactly the rows IHDR declares.

    Catches what CRCs cannot: a header declaring 3000x3000 over a tiny (valid-CRC) body, a stream
    cut short or padded, an invalid row filter. Raises ImageError naming the file.
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageError(f"{label}: PNG without an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    depth, colour, interlace = data[24], data[25], data[28]
    check_pixels(width, height, label)
    if colour not in _CHANNELS:
        raise ImageError(f"{label}: PNG colour type {colour} is invalid")
    bits = _CHANNELS[colour] * depth
    if interlace:
        passes = [
            ((height - y0 + dy - 1) // dy, ((width - x0 + dx - 1) // dx * bits + 7) // 8) for x0, y0, dx, dy in _ADAM7
        ]
        passes = [(rows, stride) for rows, stride in passes if rows and stride]
    else:
        passes = [(height, (width * bits + 7) // 8)]
    expected = sum(rows * (stride + 1) for rows, stride in passes)
    row = passes[0][1] + 1 if not interlace else 0
    lib = images.fast_zlib  # looked up per call: tests run the same checks under plain zlib
    inflater, produced, pos, view = lib.decompressobj(), 0, 8, memoryview(data)

    def take(out: bytes) -> None:
        nonlocal produced
        if row and out:
            first = -produced % row
            if (np.frombuffer(out, np.uint8)[first::row] > 4).any():
                raise ImageError(
                    f"{label}: PNG row filter byte out of range for its {width}x{height} header; "
                    "the image data is corrupt or does not match the header"
                )
        produced += len(out)
        if produced > expected:
            raise ImageError(f"{label}: PNG image data is longer than its {width}x{height} header declares")

    try:
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":  # fed in pieces: a huge IDAT's unconsumed tail is never copied over and over
                end = min(pos + 8 + length, len(data))
                for start in range(pos + 8, end, INFLATE_INPUT):
                    take(inflater.decompress(view[start : min(start + INFLATE_INPUT, end)], INFLATE_CHUNK))
                    while inflater.unconsumed_tail:
                        take(inflater.decompress(inflater.unconsumed_tail, INFLATE_CHUNK))
            elif kind == b"IEND":
                break
            pos += 12 + length
        take(inflater.flush())
    except (zlib.error, lib.error) as err:
        raise ImageError(f"{label}: PNG image data does not inflate ({err}); the file is corrupt") from None
    if produced != expected or not inflater.eof:
        raise ImageError(
            f"{label}: PNG image data holds {produced} bytes where its {width}x{height} header "
            f"declares {expected}; the file is truncated or corrupt"
        )


def verify_image(data: bytes, verify: str, name: str) -> ImageInfo:
    """inspect_image plus what `verify` adds (see the module docstring)."""
    if verify == "fast":
        info = inspect_image(data, "fast", name=name)
        if info.format == "PNG":
            check_png_stream(data, name)
        else:
            inspect_image(data, "full", name=name)
        return info
    return inspect_image(data, "full" if verify == "full" else "fast", name=name)


@dataclass
class CheckedPair:
    """A pair after validation: its files' bytes and header info, or the problem found."""

    pair: RawPair
    lq: ImageInfo | None = None
    hq: ImageInfo | None = None
    lq_bytes: bytes = b""
    hq_bytes: bytes = b""
    problem: Problem | None = None
    fitted: str | None = None  # how --fit-hq resize changed the HQ, e.g. "resize 1184x864 -> 640x480"


def _fit_hq(hq_bytes: bytes, lq: ImageInfo, hq: ImageInfo) -> tuple[bytes, str]:
    """Bring an HQ onto the LQ geometry (nearest integer scale) with `ggt synth`'s normalisation."""
    from ggt_datasets.synth.normalize import UnalignedOutputError, normalize_output

    scale = max(1, round(hq.width / lq.width))
    try:
        done = normalize_output(hq_bytes, lq.size, scale=scale, fit="resize", max_aspect_error=FIT_MAX_ASPECT_ERROR)
    except UnalignedOutputError as err:
        raise ImageError(f"--fit-hq resize refused: {err}") from None
    return done.data, done.method


def check_pair(pair: RawPair, verify: str = "fast", fit_hq: str = "skip") -> CheckedPair:
    """Validate one pair, reading each file once: both present and decodable, sane sizes,
    HQ = s x LQ for an integer s (or fitted onto it with fit_hq="resize"). The bytes are kept for writing."""

    def bad(path: Path | str, reason: str) -> CheckedPair:
        return CheckedPair(pair, problem=Problem(str(path), reason, pair.id, pair.split, pair.category))

    if pair.hq is None:
        return bad(pair.lq.parent.parent / "hq" / f"{pair.id}.png", "missing HQ file (no file with this id in hq/)")
    try:
        lq_bytes, hq_bytes = pair.lq.read_bytes(), pair.hq.read_bytes()
        lq = verify_image(lq_bytes, verify, name=str(pair.lq))
        hq = verify_image(hq_bytes, verify, name=str(pair.hq))
    except ImageError as err:
        return bad(str(err).split(": ", 1)[0], str(err).split(": ", 1)[-1])
    except OSError as err:
        return bad(err.filename or pair.lq, f"cannot read file ({err.strerror})")
    for path, info in ((pair.lq, lq), (pair.hq, hq)):
        if min(info.size) < MIN_SIDE or max(info.size) > MAX_SIDE:
            return bad(path, f"size {info.width}x{info.height} outside {MIN_SIDE}..{MAX_SIDE} px")
    scale = hq.width // lq.width
    fitted = None
    if scale < 1 or hq.width != scale * lq.width or hq.height != scale * lq.height:
        if fit_hq != "resize":
            return bad(
                pair.hq,
                f"HQ {hq.width}x{hq.height} is neither the LQ size {lq.width}x{lq.height} nor an "
                "integer multiple of it (--fit-hq resize brings it onto the LQ geometry)",
            )
        try:
            hq_bytes, fitted = _fit_hq(hq_bytes, lq, hq)
        except ImageError as err:
            return bad(pair.hq, str(err))
        hq = inspect_image(hq_bytes, "header", name=str(pair.hq))
    return CheckedPair(pair, lq, hq, lq_bytes, hq_bytes, fitted=fitted)


def _image_cell(path: Path, data: bytes, info: ImageInfo, item_id: str, converted: list[dict], fitted: bool) -> dict:
    """{"bytes", "path"} for the parquet Image column: the file as stored, or RGB PNG when it must be converted."""
    if fitted:
        return {"bytes": data, "path": f"{item_id}.png"}
    if info.stored_as_is:
        return {"bytes": data, "path": f"{item_id}{path.suffix.lower()}"}
    converted.append({"path": str(path), "mode": info.mode, "exif_orientation": info.orientation})
    return {"bytes": encode_png(to_rgb(open_image(data, str(path)))), "path": f"{item_id}.png"}


def make_row(c: CheckedPair, qc: dict, converted: list[dict]) -> dict:
    """The parquet row of a checked pair: images, category, provenance and QC columns, the rest as JSON."""
    meta = dict(c.pair.metadata)
    row = {
        schema.ID: c.pair.id,
        schema.LQ: _image_cell(c.pair.lq, c.lq_bytes, c.lq, c.pair.id, converted, False),
        schema.HQ: _image_cell(c.pair.hq, c.hq_bytes, c.hq, c.pair.id, converted, c.fitted is not None),
        schema.CATEGORY: schema.CATEGORIES.index(c.pair.category),
    }
    for name in schema.PROVENANCE_COLUMNS:
        value = meta.pop(name, None)
        row[name] = None if value is None else str(value)
    for name in schema.QC_COLUMNS:
        value = meta.pop(name, None)
        row[name] = None if value is None else float(value)
    for key, column in QC_SCORE_COLUMNS.items():
        if qc.get("scores", {}).get(key) is not None:
            row[column] = float(qc["scores"][key])
    if schema.HQ_FIT in row:
        row[schema.HQ_FIT] = c.fitted
    for key in ("id", "split", "category"):
        meta.pop(key, None)
    row[schema.EXTRA] = json.dumps(meta, sort_keys=True) if meta else None
    return row


@dataclass
class ShardJob:
    """One parquet shard to write: where, which pairs, and how to check them."""

    path: Path
    pairs: list[RawPair]
    qc: dict[tuple, dict]
    verify: str
    strict: bool
    fit_hq: str = "skip"
    threads: int = 1  # checker threads (the writer is one more)
    stage: Path | None = None  # written here (atomically), then renamed onto `path`; None: written at `path`
    size: int = 0  # input bytes (the largest shards are started first)
    sizes: list[int] = field(default_factory=list)  # input bytes of each pair (bounds the read-ahead); [] unknown


@dataclass
class ShardResult:
    rows: int = 0
    skipped: list[dict] = field(default_factory=list)
    converted: list[dict] = field(default_factory=list)
    fitted: list[dict] = field(default_factory=list)
    bytes_read: int = 0


class _NoRows(Exception):
    """Raised inside atomic_open to discard a shard left with no good pair."""


def arrow_schema() -> pa.Schema:
    return schema.FEATURES.arrow_schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": schema.FEATURES.to_dict()}})}
    )


def checked_pairs(job: ShardJob) -> Iterator[CheckedPair]:
    """check_pair over job.pairs in job.threads threads, yielded in input order, a few pairs ahead
    (at most threads + 2 pairs, and AHEAD_BYTES of input beyond the oldest one, in flight)."""
    ahead = job.threads + 2
    sizes = job.sizes if len(job.sizes) == len(job.pairs) else [0] * len(job.pairs)
    pending: deque = deque()  # (future, input bytes)
    in_flight = 0
    with ThreadPoolExecutor(max(1, job.threads), thread_name_prefix="ggt-check") as pool:
        try:
            for pair, size in zip(job.pairs, sizes, strict=True):
                while pending and (len(pending) >= ahead or in_flight + size > AHEAD_BYTES):
                    future, done = pending.popleft()
                    in_flight -= done
                    yield future.result()
                pending.append((pool.submit(check_pair, pair, job.verify, job.fit_hq), size))
                in_flight += size
            while pending:
                yield pending.popleft()[0].result()
        finally:
            for future, _ in pending:
                future.cancel()


def _start_writeback(f) -> None:
    """Ask the kernel to start writing the file's dirty pages now (not waiting); a hint, never needed."""
    if hasattr(os, "posix_fadvise"):
        f.flush()
        try:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def write_shard(job: ShardJob) -> ShardResult:
    """Check each pair of the shard (in job.threads threads) and stream the good ones into job.path.

    Written atomically (a temporary file, one fsync, a rename) at job.stage when given, then renamed
    onto job.path, so a kill leaves partial files only in the build's staging folder. A shard left
    with no good pair is not written (and an old file of that name is removed). With job.strict the
    first bad pair raises BadInputError naming the file.
    """
    target = arrow_schema()
    small_columns = [name for name in schema.FEATURES if name not in (schema.LQ, schema.HQ)]
    result, rows, size = ShardResult(), [], 0
    written = job.stage or job.path
    try:
        with atomic_open(written, "wb") as f, contextlib.closing(checked_pairs(job)) as checked:
            # Image bytes are PNG/JPEG already: compressing, dictionary-encoding or taking min/max
            # statistics of them costs time and gains nothing.
            with pq.ParquetWriter(
                f,
                target,
                compression="NONE",
                use_dictionary=small_columns,
                write_statistics=small_columns,
                write_page_index=True,
            ) as writer:
                for c in checked:
                    pair = c.pair
                    result.bytes_read += len(c.lq_bytes) + len(c.hq_bytes)
                    if c.problem is not None:
                        if job.strict:
                            raise BadInputError(
                                f"{c.problem.path}: {c.problem.reason} (--strict stops at the first "
                                "bad pair; drop it to skip and report)"
                            )
                        result.skipped.append(c.problem.as_dict())
                        continue
                    if c.fitted:
                        result.fitted.append(
                            {
                                "id": pair.id,
                                "split": pair.split,
                                "category": pair.category,
                                "path": str(pair.hq),
                                "method": c.fitted,
                            }
                        )
                    row = make_row(c, job.qc.get(pair.key, {}), result.converted)
                    n = len(row[schema.LQ]["bytes"]) + len(row[schema.HQ]["bytes"])
                    if rows and (size + n > ROW_GROUP_BYTES or len(rows) >= ROW_GROUP_ROWS):
                        writer.write_table(pa.Table.from_pylist(rows, schema=target), row_group_size=len(rows))
                        _start_writeback(f)
                        rows, size = [], 0
                    rows.append(row)
                    result.rows += 1
                    size += n
                if rows:
                    writer.write_table(pa.Table.from_pylist(rows, schema=target), row_group_size=len(rows))
            if not result.rows:
                raise _NoRows
    except _NoRows:
        job.path.unlink(missing_ok=True)
        return result
    if job.stage is not None:
        try:
            os.replace(job.stage, job.path)
        except OSError as err:
            job.stage.unlink(missing_ok=True)
            raise WriteError(err.errno, f"cannot write {job.path}: {err.strerror or err}") from None
    return result
