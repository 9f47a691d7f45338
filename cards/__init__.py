"""Card templates (dataset, model, metric) and where to find them.

Templates are Jinja2 files rendered through huggingface_hub's `DatasetCard.from_template` /
`ModelCard.from_template`, so card YAML goes through the Hub's own card data classes.

Example:
    >>> from ggt_datasets.cards import template_path
    >>> template_path("dataset_card.md").name
    'dataset_card.md'
"""

from __future__ import annotations

from pathlib import Path

CARDS_DIR = Path(__file__).resolve().parent


def template_path(name: str) -> Path:
    """Path of the card template `name` shipped in cards/; FileNotFoundError lists the others."""
    path = CARDS_DIR / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CARDS_DIR.glob("*.md")))
        raise FileNotFoundError(f"no card template {name!r} in {CARDS_DIR}; have: {known}")
    return path


__all__ = ["CARDS_DIR", "template_path"]
