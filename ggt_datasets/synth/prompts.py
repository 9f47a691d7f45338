"""The instructions given to the generator: fixed templates per category, or adaptive ones.

Fixed mode: `prompts/{category}.txt` (faithful restoration: remove only the degradation; keep
content, identity, text, layout, colours and geometry; add nothing). A folder given as
`--prompt-dir` overrides any of these files by name; the rest come from the package.

Adaptive mode (the paper's choice): a VLM describes the degradations of each LQ photo
(`VLM.describe`), then writes a tailored instruction (`VLM.write_prompt`). The instruction is put
into the frame `prompts/adaptive_system.txt` (placeholders `{instruction}` and `{degradations}`),
so the faithfulness rules hold whatever the VLM wrote. Both VLM answers are stored in the item's
prompt artefact as soon as they arrive, so a rerun never asks (or pays) again.

Example:
    >>> from ggt_datasets.synth.prompts import load_templates, fixed_prompt
    >>> templates = load_templates()
    >>> fixed_prompt("rain", templates).startswith("Restore this photo by removing the rain")
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Callable

from ggt_datasets import schema
from ggt_datasets.backends.base import VLM, DegradationReport

PROMPT_MODES: tuple[str, ...] = ("fixed", "adaptive")
TEMPLATE_DIR = Path(__file__).parent / "prompts"
ADAPTIVE_FRAME = "adaptive_system"


def load_templates(prompt_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Template text by name (the six categories and 'adaptive_system').

    Files in `prompt_dir` named `{name}.txt` replace the packaged ones; other files there are
    ignored. Raises FileNotFoundError when `prompt_dir` is not a folder, ValueError for an empty
    template or an adaptive frame without `{instruction}`.
    """
    names = (*schema.CATEGORIES, ADAPTIVE_FRAME)
    templates = {n: (TEMPLATE_DIR / f"{n}.txt").read_text(encoding="utf-8") for n in names}
    if prompt_dir is not None:
        folder = Path(prompt_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: --prompt-dir is not a folder; it should hold files like rain.txt")
        for name in names:
            path = folder / f"{name}.txt"
            if path.is_file():
                templates[name] = path.read_text(encoding="utf-8")
                if not templates[name].strip():
                    raise ValueError(f"{path}: empty prompt template; write the instruction or delete the file")
    return check_templates(templates, "prompt templates")


def check_templates(templates: dict[str, str], where: str) -> dict[str, str]:
    """Templates stripped; ValueError naming `where` for an unknown name, a non-text or empty
    template, or an adaptive frame without `{instruction}`."""
    names = (*schema.CATEGORIES, ADAPTIVE_FRAME)
    unknown = sorted(set(templates) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown template(s) {', '.join(unknown)}; expected some of {', '.join(names)}")
    for name, text in templates.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: template {name!r} is empty or not text")
    if ADAPTIVE_FRAME in templates and "{instruction}" not in templates[ADAPTIVE_FRAME]:
        raise ValueError(f"{where}: {ADAPTIVE_FRAME} must contain the placeholder {{instruction}}")
    return {n: t.strip() for n, t in templates.items()}


def template_hashes(templates: dict[str, str]) -> dict[str, str]:
    """Short sha256 of each template, stored in run.json to notice edited templates."""
    return {n: hashlib.sha256(t.encode()).hexdigest()[:12] for n, t in sorted(templates.items())}


def fixed_prompt(category: str, templates: dict[str, str]) -> str:
    """The fixed instruction for a category."""
    return templates[schema.check_category(category)]


def frame_adaptive(instruction: str, report: DegradationReport, templates: dict[str, str]) -> str:
    """Put a VLM-written instruction into the faithfulness frame."""
    degradations = ", ".join(report.degradations) or "the visible degradations"
    frame = templates[ADAPTIVE_FRAME]
    return frame.replace("{instruction}", instruction.strip()).replace("{degradations}", degradations)


def make_prompt(
    category: str,
    image: bytes,
    mode: str,
    templates: dict[str, str],
    vlm: VLM | None = None,
    stored: dict[str, Any] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The prompt record of one item: {"mode", "prompt", ...}; reuses what `stored` holds.

    In adaptive mode `save` is called after each VLM answer, so an interruption between the
    two calls loses nothing that was paid for. Backend errors (TransientBackendError,
    BlockedError) propagate to the caller.
    """
    if mode == "fixed":
        return {"mode": "fixed", "category": category, "prompt": fixed_prompt(category, templates),
                "template_sha256": template_hashes({category: templates[category]})[category]}
    if mode != "adaptive":
        raise ValueError(f"unknown prompt mode {mode!r}; expected one of {', '.join(PROMPT_MODES)}")
    if vlm is None:
        raise ValueError("adaptive prompts need a VLM: pass --vlm gemini (and --vlm-model ID)")
    record = dict(stored or {})
    if record.get("mode") != "adaptive" or record.get("vlm_model") != vlm.model:
        record = {"mode": "adaptive", "category": category, "vlm": vlm.name, "vlm_model": vlm.model}
    if "report" not in record:
        record["report"] = dataclasses.asdict(vlm.describe(image))
        if save:
            save(record)
    report = DegradationReport(**record["report"])
    if "instruction" not in record:
        record["instruction"] = vlm.write_prompt(image, report)
        if save:
            save(record)
    record["prompt"] = frame_adaptive(record["instruction"], report, templates)
    return record
