"""The held-out split of the QC benchmark is disjoint from the fitting split: photos, pipelines, seeds."""

from __future__ import annotations

import numpy as np

from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing import qc_degrade
from ggt_datasets.testing.qc_sets import FAITHFUL_KINDS, REJECT_KINDS, SPLITS, load_photo, planted_pairs


def test_photos_pipelines_and_seeds_are_disjoint():
    fit, held = SPLITS["fit"], SPLITS["heldout"]
    assert not set(fit.photos) & set(held.photos)
    assert not set(fit.pipelines) & set(held.pipelines)
    assert not set(fit.seeds) & set(held.seeds) and len(fit.seeds) >= 2
    # not only the names: the functions and the weather models they use differ
    fit_fns = {qc_degrade.PIPELINES[p] for p in fit.pipelines}
    assert not fit_fns & {qc_degrade.PIPELINES[p] for p in held.pipelines}
    assert all(qc_degrade.OTHER_PRIMARIES[c].__module__ == qc_degrade.__name__ for c in CATEGORIES if c != "mixed")


def test_the_photos_themselves_differ():
    """No held-out photo is a fitting photo under another name (compared as 32x32 thumbnails)."""
    import cv2

    def thumb(name: str) -> np.ndarray:
        return cv2.resize(load_photo(name), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)

    fit = [thumb(n) for n in SPLITS["fit"].photos]
    for name in SPLITS["heldout"].photos:
        t = thumb(name)
        assert min(np.abs(t - f).mean() for f in fit) > 10, name


def test_a_held_out_draw_covers_every_category_and_kind_with_its_own_pipeline():
    pairs = list(planted_pairs(SPLITS["heldout"], per_photo=1, size=64))
    n_photos = len(SPLITS["heldout"].photos)
    assert len(pairs) == n_photos * len(CATEGORIES) * (len(FAITHFUL_KINDS) + len(REJECT_KINDS))
    assert {p.pipeline for p in pairs} == {"esrgan2"} and {p.photo for p in pairs} == set(SPLITS["heldout"].photos)
    assert {p.category for p in pairs} == set(CATEGORIES)
    assert len({p.id for p in pairs}) == len(pairs)  # ids unique across categories (one review.jsonl)
    assert {p.label for p in pairs if p.kind in FAITHFUL_KINDS} == {"accept"}
    assert {p.label for p in pairs if p.kind in REJECT_KINDS} == {"reject"}
