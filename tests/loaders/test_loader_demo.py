"""The loaders demo runs on a built dataset and on a paired folder of existing pairs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ggt_datasets.images import encode_png
from ggt_datasets.loaders.demo import demo


def test_demo_with_test_split_stand_in(built_dir, tmp_path):
    lines = demo(built_dir, tmp_path / "out")
    text = "\n".join(lines)
    assert "18 GGT train pairs mixed 1:1 with 6 pairs" in text
    assert "batch 2: lq (8, 3, 48, 48)" in text
    grid = np.asarray(Image.open(tmp_path / "out" / "loader_batch.png"))
    assert grid.shape == (8 * 48 + 7 * 2, 2 * 48 + 2, 3)
    assert grid[:48, :48].std() > 5  # real image content, not a blank tile


def test_demo_with_existing_folder(built_dir, tmp_path, photo):
    for k in range(4):
        for side in ("lq", "hq"):
            (tmp_path / "ex" / side).mkdir(parents=True, exist_ok=True)
            (tmp_path / "ex" / side / f"e{k}.png").write_bytes(encode_png(photo[k * 20 : k * 20 + 40, :64], 1))
    lines = demo(built_dir, tmp_path / "out", existing=tmp_path / "ex")
    assert any("existing=" in line and "ggt=" in line for line in lines)
    assert "40 px random crops" in "\n".join(lines)
