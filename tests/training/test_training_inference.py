"""Tiled inference (blended overlaps) and `ggt eval --model CHECKPOINT` on a tiny built dataset."""

from __future__ import annotations

import json

import pytest
import torch

from ggt_datasets.testing.checkpoints import write_official_checkpoint
from ggt_datasets.training.inference import _ramp, _starts, restore_image
from ggt_datasets.training.zoo import load_restorer, make_restorer


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_equals_whole_image_when_the_receptive_field_fits_the_overlap(tmp_path, scale):
    # realesr-compact-tiny: four 3x3 convs, a receptive field of radius 4 <= overlap // 4 = 6
    net = load_restorer(write_official_checkpoint("realesr-compact", tmp_path / "c.pth", scale=scale)).eval()
    lq = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0))
    whole = restore_image(net, lq)
    tiled = restore_image(net, lq, tile=32, overlap=24)
    assert tiled.shape == whole.shape == (1, 3, 70 * scale, 90 * scale)
    assert torch.allclose(tiled, whole, rtol=0, atol=2e-6), float((tiled - whole).abs().max())
    # a tile as large as the image is one pass: bit-identical to the model's own output
    with torch.no_grad():
        assert torch.equal(restore_image(net, lq, tile=90), net(lq).clamp(0, 1))


def test_blend_weights_sum_to_one_and_skip_the_tile_border():
    length, tile, overlap = 100, 32, 16
    total = torch.zeros(length, dtype=torch.float64)
    for s in _starts(length, tile, overlap)[:-1]:  # evenly spaced tiles (the last one is end-aligned)
        total[s : s + tile] += _ramp(tile, s > 0, True, overlap)
    starts = _starts(length, tile, overlap)
    assert starts == [0, 16, 32, 48, 64, 68]
    covered = total[: starts[-2] + tile - overlap]  # up to where the last even tile starts to fade out
    assert torch.allclose(covered, torch.ones_like(covered), rtol=0, atol=1e-12)
    w = _ramp(tile, True, True, overlap)
    assert w[: overlap // 4].sum() == 0 and w[-(overlap // 4) :].sum() == 0 and w[tile // 2] == 1


def test_sizes_are_padded_to_the_architectures_needs():
    net = make_restorer("uformer-tiny").eval()  # needs multiples of 128 here
    lq = torch.rand(1, 3, 100, 90)
    assert restore_image(net, lq).shape == (1, 3, 100, 90)
    assert restore_image(net, lq, tile=64, overlap=16).shape == (1, 3, 100, 90)
    with pytest.raises(ValueError, match="overlap must be in"):
        restore_image(net, lq, tile=16, overlap=16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: autocast (bf16/fp16) inference")
def test_cuda_autocast_inference_is_close_to_float32(tmp_path):
    net = load_restorer(write_official_checkpoint("swinir", tmp_path / "s.pth", scale=2)).cuda().eval()
    lq = torch.rand(1, 3, 64, 80, device="cuda")
    half = restore_image(net, lq, tile=48, overlap=16)
    full = restore_image(net, lq, tile=48, overlap=16, autocast=False)
    assert half.dtype == full.dtype == torch.float32 and half.shape == (1, 3, 128, 160)
    assert float((half - full).abs().mean()) < 1e-2


def test_ggt_eval_model_end_to_end(tmp_path, training_built, capsys):
    from ggt_datasets.cli import main

    ckpt = write_official_checkpoint("nafnet", tmp_path / "NAFNet-tiny.pth", seed=1)
    out, js = tmp_path / "restored", tmp_path / "scores.json"
    rc = main(["eval", "--model", str(ckpt), "--dataset", str(training_built), "--config", "rain", "--split", "test",
               "--save-outputs", str(out), "--tile", "48", "--tile-overlap", "16", "--json", str(js)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "restored by" in printed and "NAFNet x1" in printed
    doc = json.loads(js.read_text())
    ids = [r["id"] for r in doc["rows"]]
    assert doc["n"] == len(ids) >= 1 and sorted(p.stem for p in out.glob("*.png")) == sorted(ids)
    # the same scores as evaluating the saved outputs with `ggt eval --pred`
    js2 = tmp_path / "pred.json"
    assert main(["eval", "--dataset", str(training_built), "--config", "rain", "--split", "test",
                 "--pred", str(out), "--json", str(js2)]) == 0
    assert json.loads(js2.read_text())["rows"] == doc["rows"]


def test_ggt_eval_model_errors_are_one_line(tmp_path, training_built, capsys):
    from ggt_datasets.cli import main

    folder = tmp_path / "pretrained-model"
    write_official_checkpoint("swinir", folder / "SwinIR_x2.pth")
    assert main(["eval", "--model", str(folder), "--dataset", str(training_built)]) == 2
    err = capsys.readouterr().err
    assert "not a model folder" in err and "SwinIR_x2.pth" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--model", str(folder / "SwinIR_x2.pth")]) == 2
    assert "--model needs --dataset" in capsys.readouterr().err
