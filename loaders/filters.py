"""Load-time filters on category and QC/provenance columns, computed without decoding images.

Conditions are strings `"COLUMN OP VALUE"` (OP one of >=, >, <=, <, ==, !=), or a dict
`{"qc_structure_ssim": ">= 0.5", "review": "== accept"}`. A class-label column (`category`) is
compared by name with == / != (`"category == 'rain'"`); `categories=` does the same, and more.
A row whose column is empty (null)
fails the condition: a pair with no QC score is not kept by a QC threshold.

Example:
    >>> from ggt_datasets.loaders import load_pairs
    >>> ds = load_pairs("ggt-100k", split="train", categories=["rain", "snow"],  # doctest: +SKIP
    ...                 where=["qc_structure_ssim >= 0.5", "qc_vlm_f > 80"])
"""

from __future__ import annotations

import operator
import os
import re
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import datasets
import numpy as np

from ggt_datasets import schema

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*(\w+)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")
_OP_VALUE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")

Where = Union[str, Sequence[str], Mapping[str, Any], None]


def _value(text: str) -> Any:
    text = text.strip().strip("'\"")
    try:
        return float(text)
    except ValueError:
        return text


def parse_where(where: Where) -> list[tuple[str, str, Any]]:
    """Conditions as (column, op, value) triples; raises ValueError showing the expected form.

    Example:
        >>> parse_where("qc_structure_ssim >= 0.5")
        [('qc_structure_ssim', '>=', 0.5)]
    """
    if where is None:
        return []
    if isinstance(where, str):
        where = [where]
    out = []
    if isinstance(where, Mapping):
        for column, cond in where.items():
            if isinstance(cond, (tuple, list)) and len(cond) == 2 and cond[0] in _OPS:
                out.append((str(column), cond[0], cond[1]))
                continue
            m = _OP_VALUE.match(str(cond))
            if not m:
                raise ValueError(
                    f"filter {column!r}: {cond!r} is not 'OP VALUE', e.g. '>= 0.5' (OP one of {', '.join(_OPS)})"
                )
            out.append((str(column), m.group(1), _value(m.group(2))))
        return out
    for cond in where:
        m = _CONDITION.match(str(cond))
        if not m:
            raise ValueError(
                f"filter {cond!r} is not 'COLUMN OP VALUE', e.g. 'qc_structure_ssim >= 0.5' "
                f"(OP one of {', '.join(_OPS)})"
            )
        out.append((m.group(1), m.group(2), _value(m.group(3))))
    return out


def _category_ids(categories: str | Iterable[str] | None) -> list[int] | None:
    if categories is None:
        return None
    if isinstance(categories, str):
        categories = [categories]
    return [schema.CATEGORIES.index(schema.check_category(c)) for c in categories]


def _check_columns(dataset: Any, conditions: list[tuple[str, str, Any]]) -> None:
    names = list(dataset.column_names or [])
    for column, _, _ in conditions:
        if column in (schema.LQ, schema.HQ):
            raise ValueError(f"cannot filter on the image column {column!r}")
        if column not in names:
            raise ValueError(f"filter column {column!r} is not in the dataset (columns: {', '.join(names)})")


def _class_label_conditions(dataset: Any, conditions: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """Conditions on a ClassLabel column (category) compare by name: the name becomes its index.

    Without this, "category == 'rain'" compares the stored integers with a string and keeps 0 rows.
    """
    out = []
    for column, op, value in conditions:
        feature = (dataset.features or {}).get(column)
        if isinstance(feature, datasets.ClassLabel):
            if op not in ("==", "!="):
                raise ValueError(
                    f"filter '{column} {op} {value!r}': {column!r} is a class label; compare it with == or != "
                    f"by name, or use categories=[...] (names: {', '.join(feature.names)})"
                )
            if isinstance(value, str):
                if value not in feature.names:
                    raise ValueError(f"filter '{column} {op} {value!r}': no such {column}; expected one of "
                                     f"{', '.join(feature.names)} (or use categories=[...])")
                value = feature.str2int(value)
            elif not (float(value).is_integer() and 0 <= value < feature.num_classes):
                raise ValueError(
                    f"filter '{column} {op} {value!r}': compare {column!r} by name, one of {', '.join(feature.names)}"
                )
            value = int(value)
        out.append((column, op, value))
    return out


def _mask(columns: Mapping[str, Sequence[Any]], n: int, cat_ids: list[int] | None, conditions) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    if cat_ids is not None:
        keep &= np.isin(np.array([-1 if v is None else v for v in columns[schema.CATEGORY]]), cat_ids)
    for column, op, value in conditions:
        fn = _OPS[op]
        try:
            keep &= np.array([v is not None and v == v and bool(fn(v, value)) for v in columns[column]], dtype=bool)
        except TypeError:
            raise ValueError(
                f"filter '{column} {op} {value!r}': the column holds "
                f"{type(next(v for v in columns[column] if v is not None)).__name__} values; "
                "compare numbers with numbers and text with == / !="
            ) from None
    return keep


def filter_pairs(
    dataset: datasets.Dataset | datasets.IterableDataset,
    *,
    categories: str | Iterable[str] | None = None,
    where: Where = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Keep the pairs in `categories` that meet every `where` condition; images are not read.

    Map-style: reads only the named columns, then `select`s the kept rows (an index mapping, no
    copy). Streaming: a lazy `filter` that sees only the named columns.
    """
    conditions = parse_where(where)
    cat_ids = _category_ids(categories)
    _check_columns(dataset, conditions + ([(schema.CATEGORY, "", None)] if cat_ids is not None else []))
    conditions = _class_label_conditions(dataset, conditions)
    if cat_ids is not None and not isinstance((dataset.features or {}).get(schema.CATEGORY), datasets.ClassLabel):
        raise ValueError(f"column 'category' must be a ClassLabel over {schema.CATEGORIES} to filter by category")
    columns = sorted({c for c, _, _ in conditions} | ({schema.CATEGORY} if cat_ids is not None else set()))
    if not columns:
        return dataset
    if isinstance(dataset, datasets.IterableDataset):

        def keep(*values):
            batch = dict(zip(columns, values, strict=False))
            return _mask(batch, len(values[0]), cat_ids, conditions).tolist()

        # A stream decodes Image columns when it formats a row, even one the filter only reads
        # other columns of: read them as bytes while filtering, then restore the features.
        images = {c: f for c, f in (dataset.features or {}).items() if isinstance(f, datasets.Image) and f.decode}
        for c in images:
            dataset = dataset.cast_column(c, datasets.Image(decode=False))
        dataset = dataset.filter(keep, input_columns=columns, batched=True)
        for c, f in images.items():
            dataset = dataset.cast_column(c, f)
        return dataset
    table = dataset.select_columns(columns).with_format("arrow")[:]
    mask = _mask({c: table.column(c).to_pylist() for c in columns}, len(dataset), cat_ids, conditions)
    return dataset.select(np.flatnonzero(mask))


def load_pairs(
    path: str | os.PathLike,
    config: str = schema.DEFAULT_CONFIG,
    split: str = "train",
    *,
    categories: str | Iterable[str] | None = None,
    where: Where = None,
    streaming: bool = False,
    **load_kwargs: Any,
) -> datasets.Dataset | datasets.IterableDataset:
    """`datasets.load_dataset(path, config, split=...)` of a built GGT dataset, then `filter_pairs`.

    One category asked of the "all" config loads only that category's files.

    Example:
        >>> ds = load_pairs("ggt-100k", split="test", where={"qc_vlm_d": ">= 60"})  # doctest: +SKIP
    """
    if config not in schema.CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(schema.CONFIGS)}")
    schema.check_split(split)
    cats = [categories] if isinstance(categories, str) else (list(categories) if categories is not None else None)
    if config == schema.DEFAULT_CONFIG and cats is not None and len(cats) == 1:
        config = schema.check_category(cats[0])
    ds = datasets.load_dataset(os.fspath(path), config, split=split, streaming=streaming, **load_kwargs)
    return filter_pairs(ds, categories=cats, where=where)
