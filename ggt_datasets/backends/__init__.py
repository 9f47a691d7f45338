"""Clients of image generators and VLMs behind the `Generator` and `VLM` protocols.

`make_generator` / `make_vlm` build one by name. Options shared by the API backends: `model`
(None: the default in models.yaml), `base_url`, `api_version` (gemini), `api_key` (else from
GEMINI_API_KEY / GOOGLE_API_KEY / OPENAI_API_KEY), `timeout` (seconds), `prices`, `config_path`
(a YAML merged over models.yaml). Options left as None are dropped, so callers may pass the same
set to every backend.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> make_generator("classical")
    ClassicalGenerator(model='classical-baseline-v1')
    >>> make_generator("gemini", base_url="http://127.0.0.1:8765", api_key="test")  # doctest: +SKIP
    GeminiGenerator(model='gemini-3.1-flash-image-preview', base_url='http://127.0.0.1:8765')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ggt_datasets.backends.base import (
    FINISH_BLOCKED,
    FINISH_OK,
    JUDGE_FLAGS,
    VLM,
    AuthError,
    BackendRequestError,
    BlockedError,
    DegradationReport,
    FatalBackendError,
    GenerationResult,
    Generator,
    JudgeResult,
    QualityRating,
    TransientBackendError,
)


# Constructors import their SDK lazily, so importing this package stays light.
def _gemini_generator(**opts: Any) -> Generator:
    from ggt_datasets.backends.gemini import GeminiGenerator

    return _build(GeminiGenerator, "generator", "gemini", opts)


def _openai_generator(**opts: Any) -> Generator:
    from ggt_datasets.backends.openai_api import OpenAIGenerator

    return _build(OpenAIGenerator, "generator", "openai", opts)


def _diffusers_generator(**opts: Any) -> Generator:
    from ggt_datasets.backends.diffusers_edit import DiffusersGenerator

    return _build(DiffusersGenerator, "generator", "diffusers", opts)


def _classical_generator(**opts: Any) -> Generator:
    from ggt_datasets.backends.classical import ClassicalGenerator

    return _build(ClassicalGenerator, "generator", "classical", opts)


def _gemini_vlm(**opts: Any) -> VLM:
    from ggt_datasets.backends.gemini import GeminiVLM

    return _build(GeminiVLM, "VLM", "gemini", opts)


def _openai_vlm(**opts: Any) -> VLM:
    from ggt_datasets.backends.openai_api import OpenAIVLM

    return _build(OpenAIVLM, "VLM", "openai", opts)


GENERATORS: dict[str, Callable[..., Generator]] = {
    "gemini": _gemini_generator,
    "openai": _openai_generator,
    "diffusers": _diffusers_generator,
    "classical": _classical_generator,
}
VLMS: dict[str, Callable[..., VLM]] = {"gemini": _gemini_vlm, "openai": _openai_vlm}


def _accepted(cls: type) -> list[str]:
    """Keyword options a backend class takes, following **opts up to its base classes."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return sorted(set(names))


def _build(cls: type, kind: str, name: str, opts: dict[str, Any]) -> Any:
    accepted = _accepted(cls)
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise ValueError(
            f"the {name} {kind} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(**opts)


def make_generator(name: str, **opts: Any) -> Generator:
    """Build the generator `name` (gemini, openai, diffusers, classical) with options `opts`."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; expected one of {', '.join(GENERATORS)}")
    return GENERATORS[name](**{k: v for k, v in opts.items() if v is not None})


def make_vlm(name: str, **opts: Any) -> VLM:
    """Build the VLM `name` (gemini, openai) with options `opts`."""
    if name not in VLMS:
        raise ValueError(f"unknown VLM {name!r}; expected one of {', '.join(VLMS)}")
    return VLMS[name](**{k: v for k, v in opts.items() if v is not None})


__all__ = [
    "FINISH_BLOCKED",
    "FINISH_OK",
    "GENERATORS",
    "JUDGE_FLAGS",
    "VLM",
    "VLMS",
    "AuthError",
    "BackendRequestError",
    "BlockedError",
    "DegradationReport",
    "FatalBackendError",
    "GenerationResult",
    "Generator",
    "JudgeResult",
    "QualityRating",
    "TransientBackendError",
    "make_generator",
    "make_vlm",
]
