"""The QC benchmark's splits are disjoint: the held-out split shares no photo, pipeline or seed with
the fitting split nor with the validation split (the former held-out split, used to choose changes)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ggt_datasets.schema import CATEGORIES
from ggt_datasets.testing import qc_degrade
from ggt_datasets.testing.qc_sets import FAITHFUL_KINDS, REJECT_KINDS, SPLITS, load_photo, planted_pairs

PAIRS_OF_SPLITS = list(itertools.combinations(("fit", "validation", "heldout"), 2))


@pytest.mark.parametrize(("a", "b"), PAIRS_OF_SPLITS)
def test_photos_pipelines_and_seeds_are_disjoint(a, b):
    one, other = SPLITS[a], SPLITS[b]
    assert not set(one.photos) & set(other.photos)
    assert not set(one.pipelines) & set(other.pipelines)
    assert not set(one.seeds) & set(other.seeds)
    # not only the names: the functions differ
    assert not {qc_degrade.PIPELINES[p] for p in one.pipelines} & {qc_degrade.PIPELINES[p] for p in other.pipelines}


def test_the_held_out_weather_models_are_its_own():
    """The held-out pipeline's weather models are none of the fitting's (degrade.py) nor validation's."""
    for cat in CATEGORIES:
        if cat == "mixed":
            continue
        assert qc_degrade.ISP_PRIMARIES[cat] is not qc_degrade.OTHER_PRIMARIES[cat]
        assert qc_degrade.ISP_PRIMARIES[cat].__module__ == qc_degrade.__name__
    assert len(SPLITS["fit"].seeds) >= 2


@pytest.mark.parametrize(("a", "b"), PAIRS_OF_SPLITS)
def test_the_photos_themselves_differ(a, b):
    """No photo of one split is a photo of another under another name (compared as 32x32 thumbnails)."""
    import cv2

    def thumb(name: str) -> np.ndarray:
        return cv2.resize(load_photo(name), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)

    others = [thumb(n) for n in SPLITS[a].photos]
    for name in SPLITS[b].photos:
        t = thumb(name)
        assert min(np.abs(t - f).mean() for f in others) > 10, name


@pytest.mark.parametrize(("split", "pipeline"), [("heldout", "isp"), ("validation", "esrgan2")])
def test_a_draw_covers_every_category_and_kind_with_its_own_pipeline(split, pipeline):
    pairs = list(planted_pairs(SPLITS[split], per_photo=1, size=64))
    n_photos = len(SPLITS[split].photos)
    assert len(pairs) == n_photos * len(CATEGORIES) * (len(FAITHFUL_KINDS) + len(REJECT_KINDS))
    assert {p.pipeline for p in pairs} == {pipeline} and {p.photo for p in pairs} == set(SPLITS[split].photos)
    assert {p.category for p in pairs} == set(CATEGORIES)
    assert len({p.id for p in pairs}) == len(pairs)  # ids unique across categories (one review.jsonl)
    assert {p.label for p in pairs if p.kind in FAITHFUL_KINDS} == {"accept"}
    assert {p.label for p in pairs if p.kind in REJECT_KINDS} == {"reject"}


def test_the_isp_pipeline_degrades_each_category_visibly():
    """Each held-out LQ differs from its clean crop (PSNR under 35 dB) and keeps its size and dtype."""
    import skimage.data

    clean = skimage.data.astronaut()[:96, :128]
    for i, cat in enumerate(CATEGORIES):
        lq = qc_degrade.PIPELINES["isp"](clean, cat, np.random.default_rng(i))
        assert lq.shape == clean.shape and lq.dtype == np.uint8
        mse = np.mean((lq.astype(np.float64) - clean) ** 2)
        assert 10 * np.log10(255**2 / mse) < 35, cat


def test_every_planted_lq_has_something_to_restore():
    """An LQ within MAX_LQ_PSNR dB of its clean crop is drawn again, so 'faithful' and 'no-op' never name the
    same image; mild draws do occur (mixed under `plain`), so the redraw is what this checks."""
    from ggt_datasets.testing.qc_sets import MAX_LQ_PSNR, psnr

    pairs = [p for p in planted_pairs(SPLITS["fit"], per_photo=1, size=96, seed=0) if p.kind == "faithful"]
    assert pairs and all(psnr(p.lq, p.hq) < MAX_LQ_PSNR for p in pairs)
    clean = load_photo("astronaut")[:96, :96]
    draws = [psnr(qc_degrade.PIPELINES["plain"](clean, "mixed", np.random.default_rng(s)), clean) for s in range(40)]
    assert max(draws) >= MAX_LQ_PSNR  # without the redraw some LQs would be this close to clean
