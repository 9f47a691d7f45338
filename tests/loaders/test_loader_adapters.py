"""Existing-pair adapters: paired folders (BasicSR layouts, meta-info) and renamed columns."""

from __future__ import annotations

from pathlib import Path

import cv2
import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ggt_datasets import schema
from ggt_datasets.images import encode_png
from ggt_datasets.loaders import (
    PairedImageDataset,
    PairedTransformConfig,
    from_columns,
    make_dataloader,
    mix_pairs,
    paired_folder,
)


def write_tree(
    root: Path, photo: np.ndarray, names: list[str], *, scale: int = 1, lq_tmpl: str = "{}", hq="hq", lq="lq"
) -> None:
    for k, name in enumerate(names):
        hq_img = np.ascontiguousarray(photo[k * 8 : k * 8 + 64, k * 8 : k * 8 + 96])
        lq_img = (
            cv2.resize(hq_img, (96 // scale, 64 // scale), interpolation=cv2.INTER_AREA) if scale > 1 else 255 - hq_img
        )
        rel = Path(name)
        for side, img, stem in ((hq, hq_img, rel.stem), (lq, lq_img, lq_tmpl.format(rel.stem))):
            path = root / side / rel.parent / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_png(img, 1))


def test_lq_hq_folders_with_subfolders(tmp_path, photo):
    write_tree(tmp_path, photo, ["a", "b", "sub/c"])
    ds = paired_folder(tmp_path, category="haze", source="my-pairs")
    assert ds.features == schema.FEATURES
    assert ds["id"] == ["a", "b", "sub/c"] and set(ds["source"]) == {"my-pairs"}
    item = PairedImageDataset(ds)[2]
    assert item["category"] == "haze" and item["id"] == "sub/c"
    assert torch.allclose(item["lq"], 1 - item["hq"], atol=1e-6)  # the LQ written was 255 - HQ


def test_basicsr_layout_with_template_scale_and_meta_info(tmp_path, photo):
    write_tree(tmp_path, photo, ["0001", "0002", "0003"], scale=4, lq_tmpl="{}x4", hq="HR", lq="LR_x4")
    ds = paired_folder(lq_dir=tmp_path / "LR_x4", hq_dir=tmp_path / "HR", filename_tmpl="{}x4", scale=4)
    assert ds["id"] == ["0001", "0002", "0003"] and ds["category"] == [None] * 3
    item = PairedImageDataset(ds, PairedTransformConfig(crop_size=32, scale=4))[1]
    lq, hq = item["lq"], item["hq"]
    assert lq.shape[-1] == 8 and torch.allclose(F.avg_pool2d(hq[None], 4)[0], lq, atol=1.5 / 255)
    meta = tmp_path / "meta_info.txt"
    meta.write_text("0003.png (64,96,3)\n0001.png (64,96,3)\n")
    ds = paired_folder(lq_dir=tmp_path / "LR_x4", hq_dir=tmp_path / "HR", meta_info=meta, filename_tmpl="{}x4")
    assert ds["id"] == ["0003", "0001"]
    meta.write_text("0001.png\n0009.png\n")
    with pytest.raises(ValueError, match=r"missing: 0009.png \(no HQ\)"):
        paired_folder(lq_dir=tmp_path / "LR_x4", hq_dir=tmp_path / "HR", meta_info=meta, filename_tmpl="{}x4")


def test_broken_trees_give_errors_with_examples(tmp_path, photo):
    write_tree(tmp_path, photo, ["a", "b", "c"])
    (tmp_path / "hq" / "c.png").unlink()
    write_tree(tmp_path / "extra", photo, ["z"])
    (tmp_path / "extra" / "hq" / "z.png").rename(tmp_path / "hq" / "z.png")
    with pytest.raises(ValueError, match=r"1 LQ without HQ \[c\].*1 HQ without LQ \[z\]"):
        paired_folder(tmp_path)
    # sizes: an HQ that is not the LQ size
    other = tmp_path / "sizes"
    write_tree(other, photo, ["a", "b"])
    (other / "hq" / "b.png").write_bytes(encode_png(photo[:50, :50], 1))
    with pytest.raises(ValueError, match=r"b \(LQ 96x64, HQ 50x50\)"):
        paired_folder(other)
    assert len(paired_folder(other, check_sizes=False)) == 2
    with pytest.raises(FileNotFoundError, match="LQ folder"):
        paired_folder(tmp_path / "nowhere")
    (other / "hq" / "b.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="b.png: cannot read the image header"):
        paired_folder(other)
    with pytest.raises(ValueError, match="filename_tmpl"):
        paired_folder(other, filename_tmpl="x4")


def test_from_columns_with_paths_and_images(tmp_path, photo, pairs):
    write_tree(tmp_path, photo, ["a", "b"])
    raw = datasets.Dataset.from_dict({
        "input": [str(tmp_path / "lq" / f"{n}.png") for n in "ab"],
        "target": [str(tmp_path / "hq" / f"{n}.png") for n in "ab"],
        "kind": ["rain", "snow"],
    })
    ds = from_columns(raw, {"lq": "input", "hq": "target", "category": "kind"})
    item = PairedImageDataset(ds)[1]
    assert item["category"] == "snow" and item["id"] == "1" and item["hq"].shape == (3, 64, 96)
    renamed = pairs.rename_columns({"lq": "low", "hq": "high"}).remove_columns("category")
    ds2 = from_columns(renamed, {"lq": "low", "hq": "high", "id": "id"}, category="old_photo")
    assert PairedImageDataset(ds2)[0]["category"] == "old_photo"
    with pytest.raises(ValueError, match=r"\{'hq': 'tgt'\} not in the dataset"):
        from_columns(raw, {"lq": "input", "hq": "tgt"})
    with pytest.raises(ValueError, match="must name the lq and hq"):
        from_columns(raw, {"lq": "input"})
    stream = from_columns(raw.to_iterable_dataset(), {"lq": "input", "hq": "target"}, category="rain")
    assert [r["id"] for r in stream] == ["0", "1"]


def test_folder_pairs_mix_with_ggt_pairs(tmp_path, photo, pairs):
    write_tree(tmp_path, photo, ["a", "b", "c", "d"])
    mixed = mix_pairs(
        {"ggt": pairs, "existing": paired_folder(tmp_path)}, seed=0, transform=PairedTransformConfig(crop_size=32)
    )
    batch = next(iter(make_dataloader(mixed, batch_size=8, num_workers=0)))
    assert batch["lq"].shape == (8, 3, 32, 32)
    assert set(batch["source"]) == {"ggt", "existing"}
    assert all((s == "existing") == (i in "abcd") for s, i in zip(batch["source"], batch["id"], strict=False))
