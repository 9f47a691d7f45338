"""The backends' config (models.yaml): model ids, endpoints, output geometry and prices.

Everything a backend needs to know about a provider that may change comes from here, never from
code. A user file given as `config_path` is merged over the packaged one, key by key.

Example:
    >>> from ggt_datasets.backends import config
    >>> cfg = config.load_config()
    >>> cfg["generators"]["gemini"]["model"]
    'gemini-3.1-flash-image-preview'
    >>> config.choose_aspect_ratio(1000, 760, cfg)
    '4:3'
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("models.yaml")


@functools.lru_cache(maxsize=8)
def _read_yaml(path: str, mtime: float) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(config_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The packaged models.yaml, with the user's file (if any) merged over it. Returns a copy."""
    cfg = _read_yaml(str(DEFAULT_CONFIG_PATH), DEFAULT_CONFIG_PATH.stat().st_mtime)
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: backend config file not found (a YAML like models.yaml)")
        cfg = _merge(cfg, _read_yaml(str(path), path.stat().st_mtime))
    return copy.deepcopy(cfg)


def section(cfg: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The settings of backend `name` under `kind` ("generators" or "vlms"); {} if absent."""
    return dict((cfg.get(kind) or {}).get(name) or {})


def model_prices(cfg: dict[str, Any], model: str, override: dict | None = None) -> dict[str, float]:
    """Prices (USD per 1M tokens) for `model`: `override` if given, else config, else {}."""
    if override is not None:
        prices = override.get(model, override) if isinstance(override.get(model), dict) else override
    else:
        prices = (cfg.get("prices") or {}).get(model) or {}
    try:
        return {str(k): float(v) for k, v in prices.items()}
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"prices for {model!r} must map names to numbers, got {prices!r}") from None


def client_settings(cfg: dict[str, Any], kind: str, name: str, model: str | None, base_url: str | None,
                    timeout: float | None, prices: dict | None
                    ) -> tuple[dict[str, Any], str, str | None, float, dict[str, float]]:
    """(section, model, base_url, timeout, prices) of an API client: arguments over models.yaml.

    Raises ValueError when no model is known or the timeout is not positive.
    """
    sec = section(cfg, kind, name)
    model = model or sec.get("model")
    if not model:
        raise ValueError(f"no model for {name} {kind}: pass model=... or set it in models.yaml")
    timeout = float(timeout if timeout is not None else sec.get("timeout", 120.0))
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return sec, model, base_url or sec.get("base_url"), timeout, model_prices(cfg, model, prices)


def ratio_value(ratio: str) -> float:
    """'16:9' -> 1.777..."""
    w, h = ratio.split(":")
    return float(w) / float(h)


def choose_aspect_ratio(width: int, height: int, cfg: dict[str, Any], size: str = "1K") -> str:
    """The Gemini aspect-ratio bucket nearest to width:height (compared in log space)."""
    import math

    buckets = gemini_buckets(cfg, size)
    target = math.log(width / height)
    return min(buckets, key=lambda r: abs(math.log(ratio_value(r)) - target))


def gemini_buckets(cfg: dict[str, Any], size: str) -> dict[str, tuple[int, int]]:
    """{aspect ratio: (width, height)} for a Gemini image size ("1K", "2K", "4K")."""
    table = cfg.get("gemini_buckets") or {}
    if size not in table:
        raise ValueError(f"unknown Gemini image size {size!r}; expected one of {', '.join(table)}")
    return {r: (int(wh[0]), int(wh[1])) for r, wh in table[size].items()}


def choose_image_size(width: int, height: int, cfg: dict[str, Any], max_size: str = "2K") -> str:
    """The smallest Gemini image size whose bucket covers the LQ's long side, up to `max_size`.

    Example: a 900x600 LQ -> "1K"; 1800x1200 -> "2K"; 5000x3000 with max_size "2K" -> "2K".
    """
    sizes = list(cfg.get("gemini_buckets") or {})
    if max_size not in sizes:
        raise ValueError(f"unknown Gemini image size {max_size!r}; expected one of {', '.join(sizes)}")
    ratio = choose_aspect_ratio(width, height, cfg, max_size)
    for size in sizes[: sizes.index(max_size) + 1]:
        bw, bh = gemini_buckets(cfg, size)[ratio]
        if max(bw, bh) >= max(width, height):
            return size
    return max_size


def choose_openai_size(width: int, height: int, cfg: dict[str, Any]) -> str:
    """The gpt-image output size ('1024x1536', ...) nearest in aspect ratio to width:height."""
    import math

    sizes = list(cfg.get("openai_sizes") or ["1024x1024"])
    target = math.log(width / height)

    def dist(s: str) -> float:
        w, h = (int(v) for v in s.split("x"))
        return abs(math.log(w / h) - target)

    return min(sizes, key=dist)
