"""Finding the LQ photos of a synthesis run and registering them in the ledger.

LQ_DIR is either sorted by category (`LQ_DIR/<category>/**/*.png|jpg|jpeg|webp`) or flat
(`LQ_DIR/*.jpg`) with `--category`. Each file becomes an item named by the short sha256 of its
bytes; a file that is not a readable image is registered as `failed` with the reason, so one bad
file never stops a run.

Example:
    >>> from ggt_datasets.synth.inputs import register_inputs
    >>> register_inputs(ledger, "photos/", category="rain")  # doctest: +SKIP
    {'found': 120, 'new': 120, 'bad': 1, 'duplicates': 0, 'ignored': 2}
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ggt_datasets import schema
from ggt_datasets.images import ImageError, encode_png, image_files, inspect_image, load_rgb
from ggt_datasets.synth.ledger import Ledger, item_id, sha256_bytes

log = logging.getLogger(__name__)


def find_lq_files(lq_dir: str | os.PathLike, category: str | None = None) -> list[tuple[str, Path]]:
    """(category, path) of every image file under LQ_DIR, sorted.

    Raises FileNotFoundError / ValueError naming what was found when the folder fits neither
    layout.
    """
    root = Path(lq_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: LQ folder not found")
    if category is not None:
        schema.check_category(category)
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    cat_dirs = [d for d in subdirs if d in schema.CATEGORIES]
    flat = image_files(root, recursive=False)
    if cat_dirs:
        wanted = [category] if category else cat_dirs
        if category and category not in cat_dirs:
            raise ValueError(f"{root}: no {category}/ folder (found category folders {', '.join(cat_dirs)})")
        if flat:
            log.warning("%s: %d image(s) directly in LQ_DIR ignored; they belong in a category folder", root, len(flat))
        return [(c, p) for c in wanted for p in image_files(root / c)]
    if flat:
        if category is None:
            raise ValueError(
                f"{root}: {len(flat)} image(s) but no category folders ({', '.join(schema.CATEGORIES)}); "
                "pass --category C for a flat folder")
        return [(category, p) for p in flat]
    found = f"folders {', '.join(subdirs)}" if subdirs else "nothing"
    raise ValueError(f"{root}: no LQ images found (found {found}); expected LQ_DIR/<category>/*.png "
                     f"with category one of {', '.join(schema.CATEGORIES)}, or a flat folder with --category")


def register_inputs(ledger: Ledger, lq_dir: str | os.PathLike, category: str | None = None,
                    split: str = "train", progress: bool = False) -> dict[str, int]:
    """Add every LQ file under `lq_dir` to the ledger (pending, or failed when unreadable).

    Unchanged files already in the ledger (same path, size and mtime) are not read again.
    Returns counts: found, new, bad, duplicates.
    """
    schema.check_split(split)
    root = Path(lq_dir).resolve()
    files = find_lq_files(root, category)
    known = ledger.known_files()
    rows: dict[str, dict[str, Any]] = {}
    bad = duplicates = 0
    from tqdm.auto import tqdm

    for cat, path in tqdm(files, desc="reading LQ", unit="file", disable=not progress or len(files) < 1000):
        st = path.stat()
        seen = known.get(str(path))
        if seen and seen[:2] == (st.st_size, st.st_mtime_ns):
            continue
        data = path.read_bytes()
        row = {"id": item_id(data), "stem": path.stem, "category": cat, "split": split, "src_path": str(path),
               "source": path.relative_to(root).as_posix(), "lq_sha256": sha256_bytes(data),
               "lq_ext": path.suffix.lower(), "src_size": st.st_size, "src_mtime_ns": st.st_mtime_ns}
        try:
            info = inspect_image(path, verify="fast")
            row.update(lq_width=info.width, lq_height=info.height)
        except ImageError as err:
            row.update(state="failed", last_error=f"bad LQ file: {err}")
            bad += 1
        if row["id"] in rows:
            duplicates += 1
            log.warning("%s has the same bytes as %s; synthesised once", path, rows[row["id"]]["src_path"])
            continue
        rows[row["id"]] = row
    new = ledger.add_items(rows.values())
    return {"found": len(files), "new": new, "bad": bad, "duplicates": duplicates}


def generator_input(path: str | os.PathLike, data: bytes | None = None) -> tuple[bytes, str]:
    """The bytes sent to the generator for an LQ file (whose bytes are `data` if given), and mime.

    The file's own bytes, except when it is EXIF-rotated or not RGB: then a PNG of the pixels as
    a viewer shows them, so the generator sees what the HQ will be aligned to.
    """
    info = inspect_image(path, verify="fast")
    if info.stored_as_is:
        mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}.get(info.format, "image/png")
        return (Path(path).read_bytes() if data is None else data), mime
    return encode_png(load_rgb(path if data is None else data)), "image/png"
