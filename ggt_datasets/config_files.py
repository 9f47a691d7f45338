"""Reading a YAML config file into a dataclass, with errors that name the file and the field.

One reader for the layout files of `ggt build`, `ggt bench-mfm` and `ggt experiment` configs and
the QC thresholds files.

Example:
    >>> from ggt_datasets.config_files import load_yaml_dataclass
    >>> cfg = load_yaml_dataclass("bench.yaml", BenchConfig, "bench config", required=("generators",))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_yaml_mapping(
    path: str | os.PathLike, what: str, *, error: type[ValueError] = ValueError, hint: str = ""
) -> dict[str, Any]:
    """The YAML mapping at `path`: FileNotFoundError if missing (`hint` added), `error` naming the
    file for bad YAML or a top level that is not a mapping."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {what} not found{hint}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise error(f"{p}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise error(f"{p}: a {what} is a YAML mapping of keys to values")
    return data


def load_yaml_dataclass(
    path: str | os.PathLike,
    cls: type[T],
    what: str,
    *,
    required: Iterable[str] = (),
    prepare: Callable[[Path, dict[str, Any]], dict[str, Any]] | None = None,
    error: type[ValueError] = ValueError,
) -> T:
    """Read the YAML mapping at `path` into `cls(**data)`.

    Missing file -> FileNotFoundError; bad YAML, a non-mapping, unknown or missing keys, or a value
    `cls` refuses -> `error` (a ValueError), each naming the file. `prepare(path, data)` may rewrite
    the mapping first (aliases such as `model:` for `models:`).
    """
    p = Path(path)
    data = read_yaml_mapping(p, what, error=error)
    if prepare is not None:
        data = prepare(p, data)
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(data) - known
    if unknown:
        raise error(f"{p}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
    missing = [k for k in required if k not in data]
    if missing:
        raise error(f"{p}: missing {missing}")
    try:
        return cls(**data)
    except (ValueError, TypeError) as err:
        raise error(f"{p}: {err}") from None
