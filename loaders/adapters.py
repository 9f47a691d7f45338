"""Existing pairs as GGT-schema datasets: paired folders (BasicSR layout) and renamed columns.

The results are `datasets` objects with the GGT columns, so `PairedImageDataset`,
`IterablePairedDataset`, `filter_pairs` and `mix_pairs` take them like GGT data.

Example:
    >>> from ggt_datasets.loaders import paired_folder, from_columns
    >>> df2k = paired_folder(lq_dir="DF2K/LR_x4", hq_dir="DF2K/HR", filename_tmpl="{}x4", scale=4)  # doctest: +SKIP
    >>> ds = from_columns(load_dataset("user/pairs", split="train"), {"lq": "input", "hq": "target"})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import datasets
from PIL import Image as PILImage

from ggt_datasets import schema
from ggt_datasets.images import IMAGE_SUFFIXES, image_files

MAX_EXAMPLES = 5
_COLUMN_KEYS = (schema.LQ, schema.HQ, schema.ID, schema.CATEGORY)


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_EXAMPLES])
    return shown + (f", ... ({len(items)} in all)" if len(items) > MAX_EXAMPLES else "")


def _images(folder: Path) -> dict[str, Path]:
    """Relative path without suffix ('sub/0001') -> file, for every image under `folder` (images.image_files)."""
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in image_files(folder)}


def _template_regex(filename_tmpl: str) -> re.Pattern:
    if filename_tmpl.count("{}") != 1:
        raise ValueError(
            f"filename_tmpl must contain '{{}}' once (BasicSR style, e.g. '{{}}x4'), got {filename_tmpl!r}"
        )
    prefix, suffix = filename_tmpl.split("{}")
    return re.compile("^" + re.escape(prefix) + "(.+)" + re.escape(suffix) + "$")


def read_meta_info(path: str | os.PathLike) -> list[str]:
    """BasicSR meta-info file: one HQ file name per line, optionally followed by '(h,w,c)'.

    Example:
        >>> read_meta_info("meta_info_DIV2K800sub_GT.txt")[:1]  # doctest: +SKIP
        ['0001_s001.png']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"meta_info file {path} not found")
    names = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"meta_info file {path} lists no files; expected lines like '0001.png (480,480,3)'")
    return names


def _resolve_dirs(root, lq_dir, hq_dir) -> tuple[Path, Path]:
    if root is not None:
        if lq_dir is not None or hq_dir is not None:
            raise ValueError("give either root (with lq/ and hq/ inside) or lq_dir and hq_dir, not both")
        root = Path(root)
        lq_dir = root / "lq"
        hq_dir = root / "hq" if (root / "hq").is_dir() or not (root / "gt").is_dir() else root / "gt"
    if lq_dir is None or hq_dir is None:
        raise ValueError("paired_folder needs root (holding lq/ and hq/) or both lq_dir and hq_dir")
    for name, folder in (("LQ", Path(lq_dir)), ("HQ", Path(hq_dir))):
        if not folder.is_dir():
            raise FileNotFoundError(f"{name} folder {folder} not found")
    return Path(lq_dir), Path(hq_dir)


def _match(lq_dir: Path, hq_dir: Path, meta_info, filename_tmpl: str) -> list[tuple[str, Path, Path]]:
    pattern = _template_regex(filename_tmpl)
    if meta_info is not None:
        pairs, missing = [], []
        for name in read_meta_info(meta_info):
            hq = hq_dir / name
            rel = Path(name)
            lq = lq_dir / rel.parent / (filename_tmpl.format(rel.stem) + rel.suffix)
            if not hq.is_file() or not lq.is_file():
                missing.append(f"{name} ({'no HQ' if not hq.is_file() else 'no LQ ' + str(lq.relative_to(lq_dir))})")
                continue
            pairs.append((rel.with_suffix("").as_posix(), lq, hq))
        if missing:
            raise ValueError(f"{len(missing)} file(s) listed in {meta_info} are missing: {_examples(missing)}")
        return pairs
    hqs = _images(hq_dir)
    lqs: dict[str, Path] = {}
    unmatched_lq = []
    for key, path in _images(lq_dir).items():
        parent, _, stem = key.rpartition("/")
        m = pattern.match(stem)
        if m:
            lqs[(parent + "/" if parent else "") + m.group(1)] = path
        else:
            unmatched_lq.append(path.name)
    only_lq = sorted(set(lqs) - set(hqs)) + unmatched_lq
    only_hq = sorted(set(hqs) - set(lqs))
    if only_lq or only_hq:
        raise ValueError(
            f"LQ and HQ names do not match in {lq_dir} and {hq_dir} (filename_tmpl={filename_tmpl!r}): "
            f"{len(only_lq)} LQ without HQ [{_examples(only_lq)}], {len(only_hq)} HQ without LQ [{_examples(only_hq)}]"
        )
    if not hqs:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {hq_dir}")
    return [(key, lqs[key], hqs[key]) for key in sorted(hqs)]


def _size(path: Path) -> tuple[int, int]:
    try:
        with PILImage.open(path) as img:
            return img.size
    except Exception as err:
        raise ValueError(f"{path}: cannot read the image header ({err}); fix or remove the pair") from None


def _check_sizes(pairs: list[tuple[str, Path, Path]], scale: int | None) -> int:
    bad = []
    for key, lq, hq in pairs:
        (lw, lh), (hw, hh) = _size(lq), _size(hq)
        if scale is None:
            scale = hw // lw if lw and hw % lw == 0 else 0
        if scale < 1 or (hw, hh) != (lw * scale, lh * scale):
            bad.append(f"{key} (LQ {lw}x{lh}, HQ {hw}x{hh})")
    if bad:
        raise ValueError(f"{len(bad)} pair(s) whose HQ is not {scale or '?'}x the LQ size: {_examples(bad)}")
    return scale or 1


def paired_folder(
    root: str | os.PathLike | None = None,
    *,
    lq_dir: str | os.PathLike | None = None,
    hq_dir: str | os.PathLike | None = None,
    meta_info: str | os.PathLike | None = None,
    filename_tmpl: str = "{}",
    scale: int | None = None,
    category: str | None = None,
    source: str | None = None,
    check_sizes: bool = True,
) -> datasets.Dataset:
    """Pairs from an LQ folder and an HQ folder, matched by name, as a GGT-schema Dataset.

    root: a folder holding lq/ and hq/ (or gt/); or give lq_dir and hq_dir (BasicSR's
        dataroot_lq / dataroot_gt). Subfolders are matched by relative path.
    meta_info: BasicSR meta-info file listing the HQ names to use (paths relative to hq_dir).
    filename_tmpl: LQ name from the HQ stem, BasicSR style ('{}x4' for DIV2K's 0001x4.png).
    scale: HQ size / LQ size; None infers it from the first pair. check_sizes reads every
        header (fast; no decoding) and raises ValueError listing mismatched pairs.
    category / source: values for those columns (None leaves them empty).

    Images are referenced by path (not copied); the ids are the relative HQ stems.
    Raises ValueError listing examples when names or sizes do not match.
    """
    lq_dir, hq_dir = _resolve_dirs(root, lq_dir, hq_dir)
    if category is not None:
        schema.check_category(category)
    if scale is not None and (not isinstance(scale, int) or scale < 1):
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    pairs = _match(lq_dir, hq_dir, meta_info, filename_tmpl)
    if check_sizes:
        _check_sizes(pairs, scale)
    n = len(pairs)
    columns: dict[str, list] = {name: [None] * n for name in schema.FEATURES}
    columns[schema.ID] = [key for key, _, _ in pairs]
    columns[schema.LQ] = [{"bytes": None, "path": str(lq.resolve())} for _, lq, _ in pairs]
    columns[schema.HQ] = [{"bytes": None, "path": str(hq.resolve())} for _, _, hq in pairs]
    columns[schema.CATEGORY] = [category] * n
    columns["source"] = [source] * n
    return datasets.Dataset.from_dict(columns, features=schema.FEATURES)


def from_columns(
    dataset: datasets.Dataset | datasets.IterableDataset,
    column_map: Mapping[str, str],
    *,
    category: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """A dataset whose pair columns have other names, renamed to GGT's (id, lq, hq, category).

    column_map maps our names to theirs, e.g. {"lq": "input", "hq": "target", "id": "name"}.
    Image columns may be Image features or file-path strings. Without an id column the row
    number is used; without a category column, `category` (or empty). Other columns are dropped.
    Sizes are checked when pairs are loaded (the error names the pair).
    """
    unknown = sorted(set(column_map) - set(_COLUMN_KEYS))
    if unknown:
        raise ValueError(f"column_map keys must be among {_COLUMN_KEYS}, got {unknown}")
    if schema.LQ not in column_map or schema.HQ not in column_map:
        raise ValueError(
            "column_map must name the lq and hq columns, e.g. {'lq': 'input', 'hq': 'target'}; "
            f"got {dict(column_map)}"
        )
    if dataset.features is None:
        raise ValueError("the dataset's features are unknown (a mapped stream?); cast it to known features first")
    names = list(dataset.column_names or [])
    absent = {ours: theirs for ours, theirs in column_map.items() if theirs not in names}
    if absent:
        raise ValueError(f"column(s) {absent} not in the dataset (columns: {', '.join(names)})")
    if category is not None:
        schema.check_category(category)
    dataset = dataset.select_columns(list(column_map.values()))
    dataset = dataset.rename_columns({theirs: ours for ours, theirs in column_map.items() if theirs != ours})
    for col in (schema.LQ, schema.HQ):
        feature = dataset.features[col]
        if isinstance(feature, datasets.Image):
            continue
        if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
            dataset = dataset.cast_column(col, datasets.Image(decode=False))
        else:
            raise ValueError(
                f"column {column_map[col]!r} ({col}) must be an Image or a file path string, got {feature}"
            )
    labels = datasets.ClassLabel(names=list(schema.CATEGORIES))
    if schema.CATEGORY in column_map:
        feature = dataset.features[schema.CATEGORY]
        if feature != labels:
            if not (isinstance(feature, datasets.Value) and feature.dtype == "string"):
                raise ValueError(f"column {column_map[schema.CATEGORY]!r} must hold category names {schema.CATEGORIES}")
            dataset = dataset.cast_column(schema.CATEGORY, labels)
    missing = [c for c in (schema.ID, schema.CATEGORY) if c not in column_map]
    if not missing:
        return dataset
    if isinstance(dataset, datasets.Dataset):
        if schema.ID in missing:
            dataset = dataset.add_column(schema.ID, [str(i) for i in range(len(dataset))])
        if schema.CATEGORY in missing:
            label = labels.str2int(category) if category is not None else None
            dataset = dataset.add_column(schema.CATEGORY, [label] * len(dataset), feature=labels)
        return dataset
    features = dataset.features.copy()
    features.update({schema.ID: datasets.Value("string"), schema.CATEGORY: labels})

    def fill(row: dict, index: int) -> dict:
        row.setdefault(schema.ID, str(index))
        row.setdefault(schema.CATEGORY, labels.str2int(category) if category is not None else None)
        return row

    return dataset.map(fill, with_indices=True, features=features)
