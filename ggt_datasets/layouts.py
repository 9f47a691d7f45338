"""Where the LQ and HQ file of each pair are, in any paired release: `ggt build --layout`.

A layout is two path patterns relative to SRC, with placeholders `{split}`, `{category}`, `{id}`,
`{ext}`, and maps from folder names to our split and config names:

    lq: "GGT-100K/{split}/{category}/LQ/{id}.{ext}"
    hq: "GGT-100K/{split}/{category}/HQ/{id}_gt.{ext}"
    categories: {Rain: rain, Hazy: haze, LowLight: low_light}    # folder name -> config
    splits: {Train: train, Test: test}
    split: train            # used when {split} is absent from the patterns
    category: rain          # used when {category} is absent
    meta_info: meta_info_DF2K.txt   # optional BasicSR list: only the HQ files it names

Literal parts match in any case. Names missing from the maps are normalised (case, `-`, `_`,
spaces and common synonyms: 'Low-light', 'LowLight', 'Old Photo', 'Hazy', 'Rainy' ...).
`infer_layout(SRC)` recognises the usual conventions (`--layout auto`) and `match_layout(SRC,
layout)` turns a layout into pairs; both are pure (they read names, never image bytes). SRC is
listed once (`source_files`, images.py's scanner: hidden and temporary files left out) and both
take what it found, so a build walks the tree one time.

Example:
    >>> from ggt_datasets.layouts import infer_layout, match_layout
    >>> layout = infer_layout("GGT-100K-release/GGT-100K")        # doctest: +SKIP
    >>> found = match_layout("GGT-100K-release/GGT-100K", layout)  # doctest: +SKIP
    >>> found.pairs[0].category, found.pairs[0].lq.name            # doctest: +SKIP
    ('rain', '0001.png')
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ggt_datasets import schema
from ggt_datasets.config_files import load_yaml_dataclass
from ggt_datasets.images import is_image_name, visible_files
from ggt_datasets.raw import Problem, RawPair, is_safe_id

PLACEHOLDERS = ("split", "category", "id", "ext")
# Side folder conventions (LQ name, HQ name), compared after `compact()`.
SIDE_CONVENTIONS: tuple[tuple[str, str], ...] = (
    ("lq", "hq"),
    ("lr", "hr"),
    ("input", "target"),
    ("input", "gt"),
    ("lq", "gt"),
    ("lr", "gt"),
    ("degraded", "clean"),
    ("low", "high"),
    ("blur", "sharp"),
    ("rain", "norain"),
    ("input", "groundtruth"),
)
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "trainset": "train",
    "test": "test",
    "testing": "test",
    "testset": "test",
}
CATEGORY_NAMES = {
    **{c.replace("_", ""): c for c in schema.CATEGORIES},
    "general": "mixed",
    "rainy": "rain",
    "derain": "rain",
    "hazy": "haze",
    "foggy": "haze",
    "fog": "haze",
    "dehaze": "haze",
    "snowy": "snow",
    "desnow": "snow",
    "lowlighting": "low_light",
    "dark": "low_light",
    "oldphotos": "old_photo",
    "old": "old_photo",
}
META_INFO_GLOB = "meta_info*.txt"
MAX_EXAMPLES = 20  # unmatched files kept for the dry-run listing


class LayoutError(ValueError):
    """A layout that cannot be used or inferred (ambiguous, unrecognised); the message says what to do."""


@functools.lru_cache(maxsize=65536)  # folder names repeat once per file: computed once each
def compact(name: str) -> str:
    """'Low-light', 'LowLight', 'low_light', 'LOW LIGHT' -> 'lowlight'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def split_name(folder: str) -> str | None:
    """Our split for a folder name ('Train', 'testing' ...), or None."""
    return SPLIT_NAMES.get(compact(folder))


def category_name(folder: str) -> str | None:
    """Our config for a folder name ('Hazy' -> 'haze', 'Old Photo' -> 'old_photo'), or None."""
    return CATEGORY_NAMES.get(compact(folder))


@dataclass
class Layout:
    """Two path patterns and the name maps; checks itself (see the module docstring)."""

    lq: str
    hq: str
    categories: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    split: str | None = None
    category: str | None = None
    meta_info: str | None = None

    def __post_init__(self) -> None:
        for side in ("lq", "hq"):
            pattern = getattr(self, side)
            if not isinstance(pattern, str) or not pattern.strip():
                raise LayoutError(
                    f"layout: `{side}` must be a path pattern such as "
                    f'"{{split}}/{{category}}/{side.upper()}/{{id}}.{{ext}}"'
                )
            names = re.findall(r"{([^{}]*)}", pattern)
            unknown = sorted(set(names) - set(PLACEHOLDERS))
            if unknown:
                raise LayoutError(
                    f"layout: `{side}` uses unknown placeholder(s) {unknown}; known: {', '.join(PLACEHOLDERS)}"
                )
            if "id" not in names or any(names.count(n) > 1 for n in names):
                raise LayoutError(
                    f"layout: `{side}` must hold {{id}} once (and each placeholder at most once): {pattern!r}"
                )
            if pattern.startswith(("/", "~")) or ".." in pattern.split("/"):
                raise LayoutError(f"layout: `{side}` must be a path inside SRC, got {pattern!r}")
        for name in ("split", "category"):
            if (f"{{{name}}}" in self.lq) != (f"{{{name}}}" in self.hq):
                raise LayoutError(f"layout: {{{name}}} must appear in both `lq` and `hq` or in neither")
        for folder, config in self.categories.items():
            if config not in schema.CATEGORIES:
                raise LayoutError(
                    f"layout: categories maps {folder!r} to {config!r}; configs are {', '.join(schema.CATEGORIES)}"
                )
        for folder, split in self.splits.items():
            if split not in schema.SPLITS:
                raise LayoutError(f"layout: splits maps {folder!r} to {split!r}; splits are {', '.join(schema.SPLITS)}")
        if self.split is not None:
            schema.check_split(self.split)
        if self.category is not None:
            schema.check_category(self.category)

    def has(self, placeholder: str) -> bool:
        return f"{{{placeholder}}}" in self.lq

    def to_dict(self) -> dict[str, Any]:
        keys = ("lq", "hq", "categories", "splits", "split", "category", "meta_info")
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, {})}

    def to_yaml(self) -> str:
        """The layout as a YAML file `load_layout` reads back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def load_layout(path: str | os.PathLike) -> Layout:
    """Read a layout YAML file; errors name the file and the field."""
    return load_yaml_dataclass(path, Layout, "layout file", error=LayoutError)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"{(split|category|id|ext)}", pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        name = m.group(1)
        exts = "|".join(s.lstrip(".") for s in schema.IMAGE_SUFFIXES)
        out.append(f"(?P<ext>{exts})" if name == "ext" else f"(?P<{name}>[^/]+?)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


def source_files(src: str | os.PathLike) -> list[str]:
    """Every visible file under `src` (images.visible_files' policy), as sorted POSIX paths relative to it.

    One directory walk; `infer_layout`, `match_layout` and `resolve_layout` take the result as `files`."""
    src = Path(src)
    prefix = len(str(src).rstrip(os.sep)) + 1  # visible_files' paths are `src / ...`: slicing beats relative_to
    return sorted(str(path)[prefix:].replace(os.sep, "/") for path in visible_files(src))


def image_files(src: str | os.PathLike, files: list[str] | None = None) -> list[str]:
    """The image files (images.is_image_name) among `files` (default: `source_files(src)`), relative POSIX paths."""
    return [rel for rel in (source_files(src) if files is None else files) if is_image_name(rel.rsplit("/", 1)[-1])]


def meta_info_files(files: list[str]) -> list[str]:
    """The BasicSR meta_info*.txt files among a `source_files` listing."""
    return [rel for rel in files if fnmatch.fnmatch(rel.rsplit("/", 1)[-1], META_INFO_GLOB)]


def read_meta_info(path: str | os.PathLike) -> set[str]:
    """File stems named by a BasicSR meta_info file ('0001.png (2040,1404,3)' or 'gt/0001.png, lq/0001.png' lines)."""
    stems = set()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        first = re.split(r"[,\s]", line.strip(), maxsplit=1)[0]
        if first:
            stems.add(Path(first).stem)
    return stems


@dataclass
class LayoutMatch:
    """What `match_layout` found: the pairs, the problems (paths with reasons), the unmatched files."""

    pairs: list[RawPair]
    problems: list[Problem]
    unmatched: list[Problem]
    unmatched_count: int = 0

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {category: pairs}}."""
        out: dict[str, dict[str, int]] = {}
        for p in self.pairs:
            out.setdefault(p.split, {}).setdefault(p.category, 0)
            out[p.split][p.category] += 1
        return out


def match_layout(src: str | os.PathLike, layout: Layout, files: list[str] | None = None) -> LayoutMatch:
    """Pair the files under `src` by `layout`: one RawPair per (split, category, id) with both sides.

    `files`: the image files to pair (POSIX paths relative to `src`, as `image_files` lists them);
    default: listed here.

    An LQ with no HQ (or the reverse), a folder that maps to no split/config, an unsafe id or a file
    matching neither pattern is reported, never guessed. Raises LayoutError when {category} is absent
    and the layout names no category.
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    if not layout.has("category") and layout.category is None:
        raise LayoutError(
            "the layout has no {category} and no category was given; pass --category NAME "
            f"({', '.join(schema.CATEGORIES)})"
        )
    rx = {side: _pattern_regex(getattr(layout, side)) for side in ("lq", "hq")}
    listed = read_meta_info(src / layout.meta_info) if layout.meta_info else None
    sides: dict[tuple[str, str, str], dict[str, str]] = {}  # side -> path relative to src
    problems: list[Problem] = []
    unmatched: list[Problem] = []
    unlisted: set[tuple[str, str, str]] = set()
    count = 0

    def miss(rel: str, why: str) -> None:
        nonlocal count
        count += 1
        if len(unmatched) < MAX_EXAMPLES:
            unmatched.append(Problem(str(src / rel), why))

    for rel in image_files(src) if files is None else files:
        hits = {side: m for side, r in rx.items() if (m := r.fullmatch(rel))}
        if len(hits) != 1:
            miss(
                rel,
                "matches both the lq and the hq pattern"
                if hits
                else f"matches neither lq {layout.lq!r} nor hq {layout.hq!r}",
            )
            continue
        ((side, m),) = hits.items()
        values = m.groupdict()
        split = (
            _map(values.get("split"), layout.splits, split_name) if layout.has("split") else (layout.split or "train")
        )
        category = (
            _map(values.get("category"), layout.categories, category_name)
            if layout.has("category")
            else layout.category
        )
        item_id = values["id"]
        if split is None:
            miss(
                rel,
                f"split folder {values['split']!r} is not {' or '.join(schema.SPLITS)}; "
                "map it under `splits:` in a layout file",
            )
        elif category is None:
            miss(
                rel,
                f"category folder {values['category']!r} maps to no config ({', '.join(schema.CATEGORIES)}); "
                "map it under `categories:` in a layout file or build it with --category",
            )
        elif not is_safe_id(item_id):
            problems.append(
                Problem(
                    str(src / rel),
                    f"id {item_id!r} is not a plain file stem (letters, digits, _ - .)",
                    item_id,
                    split,
                    category,
                )
            )
        elif side == "hq" and listed is not None and Path(rel).stem not in listed:
            miss(rel, f"not listed in {layout.meta_info}")
            unlisted.add((split, category, item_id))
        else:
            slot = sides.setdefault((split, category, item_id), {})
            if side in slot:
                problems.append(
                    Problem(
                        str(src / rel),
                        f"duplicate {side.upper()} for id {item_id!r} (also {slot[side].rsplit('/', 1)[-1]})",
                        item_id,
                        split,
                        category,
                    )
                )
            else:
                slot[side] = rel
    pairs = []
    for (split, category, item_id), slot in sorted(sides.items()):
        if "lq" not in slot:
            if listed is None or Path(slot["hq"]).stem in listed:
                problems.append(
                    Problem(str(src / slot["hq"]), "HQ has no LQ with the same id", item_id, split, category)
                )
        elif "hq" not in slot and (split, category, item_id) in unlisted:
            miss(slot["lq"], f"its HQ is not listed in {layout.meta_info}")
        elif "hq" not in slot:
            problems.append(
                Problem(
                    str(src / slot["lq"]),
                    f"missing HQ file (no file for id {item_id!r} matches {layout.hq!r})",
                    item_id,
                    split,
                    category,
                )
            )
        else:
            pairs.append(RawPair(split, category, item_id, src / slot["lq"], src / slot["hq"], {"source": slot["lq"]}))
    return LayoutMatch(pairs, problems, unmatched, count)


def _map(value: str | None, table: dict[str, str], normalise) -> str | None:
    if value is None:
        return None
    if value in table:
        return table[value]
    lowered = {compact(k): v for k, v in table.items()}
    return lowered.get(compact(value)) or normalise(value)


def _common_suffix(names: list[str]) -> str:
    return os.path.commonprefix([n[::-1] for n in names])[::-1] if names else ""


def _suffixes(lq_stems: list[str], hq_stems: list[str]) -> tuple[str, str]:
    """The file-name suffixes to strip from each side so that ids pair ('0001_lq' / '0001_gt' -> '_lq', '_gt')."""
    best, best_key = ("", ""), (-1, 0)
    lq_common, hq_common = _common_suffix(lq_stems), _common_suffix(hq_stems)
    for i in range(len(lq_common) + 1):
        for j in range(len(hq_common) + 1):
            a, b = lq_common[i:], hq_common[j:]
            ids_l = {s[: len(s) - len(a)] for s in lq_stems}
            ids_h = {s[: len(s) - len(b)] for s in hq_stems}
            shared = ids_l & ids_h
            if "" in shared or any(s[-1:] in "_-. " for s in shared):
                continue  # an id must not be empty or end in a separator: the separator belongs to the suffix
            key = (len(shared), -(len(a) + len(b)))  # most pairs, then the least stripped
            if key > best_key:
                best, best_key = (a, b), key
    return best


def _ambiguous(what: str, candidates: list[str]) -> LayoutError:
    listing = "\n  ".join(candidates)
    return LayoutError(
        f"--layout auto: {what}:\n  {listing}\nwrite a layout file (see `ggt build --help`) or point SRC at one of them"
    )


def _level_kind(values: list[str], index: int) -> str:
    """'split', 'category', 'literal' or 'unknown' for one folder level of the matched files."""
    distinct = sorted(set(values))
    if all(split_name(v) for v in distinct):
        return "split" if len(distinct) > 1 else "split?"
    if all(category_name(v) for v in distinct):
        return "category" if len(distinct) > 1 else "category?"
    return "literal" if len(distinct) == 1 else "unknown"


def infer_layout(
    src: str | os.PathLike,
    split: str | None = None,
    category: str | None = None,
    files: list[str] | None = None,
    meta_infos: list[str] | None = None,
) -> Layout:
    """Recognise the layout of a paired release under `src` (`--layout auto`).

    Side folders named by one of SIDE_CONVENTIONS (in any case), split and category folders at any
    upper level (normalised names), file-name suffixes that differ between sides, an optional BasicSR
    meta_info file. Raises LayoutError listing the candidates when more than one reading fits.
    `files` / `meta_infos`: SRC's image files and meta_info files (`image_files`, `meta_info_files`)
    when the caller has listed SRC already; by default one walk here finds both.
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    listing = source_files(src) if files is None or meta_infos is None else []
    metas = sorted(meta_info_files(listing) if meta_infos is None else meta_infos)
    files = image_files(src, listing) if files is None else files
    by_depth: dict[int, list[list[str]]] = {}
    for rel in files:
        parts = rel.split("/")
        by_depth.setdefault(len(parts) - 1, []).append(parts)
    found = []  # (depth, level, convention, files)
    for depth, group in sorted(by_depth.items()):
        for level in range(depth):
            names = Counter(compact(parts[level]) for parts in group)
            for conv in SIDE_CONVENTIONS:
                if conv[0] in names and conv[1] in names:
                    found.append((depth, level, conv, [p for p in group if compact(p[level]) in conv]))
    if not found:
        known = ", ".join(f"{a}/{b}" for a, b in SIDE_CONVENTIONS)
        raise LayoutError(
            f"--layout auto: no LQ/HQ side folders found under {src} (looked for sibling folders named {known}, "
            "in any case); write a layout file and pass --layout FILE.yaml"
        )
    if len(found) > 1:
        raise _ambiguous(
            "more than one way to read the side folders fits",
            [
                f"{'/'.join(group[0][:level])}/{{{conv[0]}|{conv[1]}}}/... "
                f"({len(group)} files, e.g. {'/'.join(group[0])})"
                for depth, level, conv, group in found
            ],
        )
    depth, side_level, conv, group = found[0]
    kinds: dict[int, str] = {}
    for level in range(depth):
        if level != side_level:
            values = [p[level] for p in group]
            kinds[level] = _level_kind(values, level)
            if kinds[level] == "unknown":
                raise _ambiguous(
                    f"folder level {level + 1} holds names that are neither splits nor categories",
                    [f"{v} ({n} files)" for v, n in Counter(values).most_common(12)],
                )
    for name in ("split", "category"):
        firm = [lv for lv, k in kinds.items() if k == name]
        tentative = [lv for lv, k in kinds.items() if k == name + "?"]
        if len(firm) > 1 or (not firm and len(tentative) > 1):
            levels = firm or tentative
            raise _ambiguous(
                f"several folder levels look like {name} folders",
                [f"level {lv + 1}: {', '.join(sorted({p[lv] for p in group}))}" for lv in levels],
            )
        chosen = firm or tentative
        for lv in tentative:
            kinds[lv] = name if lv in chosen else "literal"
    layout_maps: dict[str, dict[str, str]] = {"split": {}, "category": {}}
    patterns = {}
    for side_name, side in zip(conv, ("lq", "hq"), strict=True):
        mine = [p for p in group if compact(p[side_level]) == side_name]
        spelled = Counter(p[side_level] for p in mine).most_common(1)[0][0]
        parts = []
        for level in range(depth):
            kind = kinds.get(level)
            if level == side_level:
                parts.append(spelled)
            elif kind in ("split", "category"):
                parts.append(f"{{{kind}}}")
                normalise = split_name if kind == "split" else category_name
                layout_maps[kind].update({p[level]: normalise(p[level]) for p in mine})
            else:
                parts.append(mine[0][level])
        patterns[side] = (parts, [Path(p[-1]).stem for p in mine])
    suffix = _suffixes(patterns["lq"][1], patterns["hq"][1])
    for (side, (parts, _)), end in zip(patterns.items(), suffix, strict=True):
        patterns[side] = "/".join([*parts, f"{{id}}{end}.{{ext}}"])
    if (split is not None and kinds_has(kinds, "split")) or (category is not None and kinds_has(kinds, "category")):
        raise LayoutError("--split/--category name what the folders already give; drop them (or write a layout file)")
    if len(metas) > 1:
        raise _ambiguous("several BasicSR meta_info files", metas)
    return Layout(
        patterns["lq"],
        patterns["hq"],
        categories=layout_maps["category"],
        splits=layout_maps["split"],
        split=None if kinds_has(kinds, "split") else (split or "train"),
        category=None if kinds_has(kinds, "category") else category,
        meta_info=metas[0] if metas else None,
    )


def kinds_has(kinds: dict[int, str], name: str) -> bool:
    return name in kinds.values()


def resolve_layout(
    src: str | os.PathLike,
    layout: str = "auto",
    split: str | None = None,
    category: str | None = None,
    files: list[str] | None = None,
    meta_infos: list[str] | None = None,
) -> Layout:
    """`--layout auto` (inferred) or FILE.yaml (read), with --split/--category filling what the patterns lack.

    `files`, `meta_infos`: SRC's image and meta_info files when the caller has listed SRC (see infer_layout)."""
    if layout == "auto":
        return infer_layout(src, split, category, files=files, meta_infos=meta_infos)
    found = load_layout(layout)
    for name, value in (("split", split), ("category", category)):
        if value is None:
            continue
        if found.has(name):
            raise LayoutError(
                f"--{name} {value}: the layout {layout} already takes {{{name}}} from the paths; drop --{name}"
            )
        setattr(found, name, value)
    found.__post_init__()
    return found
