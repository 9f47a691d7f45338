"""Classical restorers by name (spandrel classes): shapes, scale support, save/load, losses, overfitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ggt_datasets.training.losses import PSNRLoss, make_loss
from ggt_datasets.training.models import MODEL_CONFIGS, MODEL_NAMES, load_pretrained, make_model, save_pretrained

TINY = ("nafnet-tiny", "swinir-tiny", "restormer-tiny")


def _pair(photo: np.ndarray, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A real-photo crop (HQ) and a noisy, darker copy (LQ), NCHW float in [0, 1]."""
    rng = np.random.default_rng(seed)
    hq = torch.from_numpy(photo[100 : 100 + size, 200 : 200 + size].copy()).permute(2, 0, 1)[None].float() / 255
    lq = (hq * 0.7 + torch.from_numpy(rng.normal(0, 0.05, hq.shape)).float()).clamp(0, 1)
    return lq, hq


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_keep_any_input_size(name):
    """Raw models take training crops; restore_image pads any size to the architecture's needs."""
    from ggt_datasets.training.inference import restore_image

    net = make_model(name).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)
        for h, w in ((37, 45), (9, 70)):
            assert restore_image(net, torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_swinir_upsamples_by_scale(scale):
    net = make_model("swinir-tiny", scale=scale).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 13, 21)).shape == (1, 3, 13 * scale, 21 * scale)


def test_full_size_configs_match_the_papers():
    sizes = {n: sum(p.numel() for p in make_model(n, scale=s).parameters())
             for n, s in (("nafnet", 1), ("swinir", 4), ("restormer", 1))}
    assert 28e6 < sizes["nafnet"] < 30e6  # NAFNet-width32 (SIDD): 29.1M
    assert 11e6 < sizes["swinir"] < 12.5e6  # SwinIR classical SR x4: 11.9M
    assert 25e6 < sizes["restormer"] < 27e6  # Restormer: 26.1M


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="scale must be 1"):
        make_model("nafnet-tiny", scale=2)
    with pytest.raises(ValueError, match="scale must be 1"):
        make_model("restormer-tiny", scale=4)
    with pytest.raises(ValueError, match="scale must be one of"):
        make_model("swinir-tiny", scale=5)
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        make_model("unet")
    with pytest.raises(ValueError, match="osediff is built by"):
        make_model("osediff")
    with pytest.raises(ValueError, match="unknown config fields"):
        make_model("swinir-tiny", depth=3)


@pytest.mark.parametrize("name,scale", [("nafnet-tiny", 1), ("swinir-tiny", 2), ("restormer-tiny", 1)])
def test_save_and_load_pretrained_roundtrip(tmp_path, name, scale):
    net = make_model(name, scale=scale).eval()
    save_pretrained(net, tmp_path / name, model_name=name)
    assert {p.name for p in (tmp_path / name).iterdir()} == {"config.json", "model.safetensors", "model_official.pth"}
    back = load_pretrained(tmp_path / name).eval()
    assert type(back) is type(net) and vars(back.config) == vars(net.config)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(net(x), back(x))
    save_pretrained(net, tmp_path / "plain", official=False)
    assert not (tmp_path / "plain" / "model_official.pth").exists()


def test_load_pretrained_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)


def test_losses(photo):
    from ggt_datasets.metrics import psnr

    lq, hq = _pair(photo)
    # PSNR-loss is minus PSNR (dB, unquantised) per image, averaged.
    assert float(PSNRLoss()(lq, hq)) == pytest.approx(-float(psnr(lq, hq, quantize=False)[0]), abs=1e-3)
    assert float(make_loss("l1")(lq, hq)) == pytest.approx(float((lq - hq).abs().mean()))
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("ssim")


@pytest.mark.parametrize("name", TINY)
def test_each_tiny_model_overfits_one_real_pair(photo, name):
    torch.manual_seed(0)
    lq, hq = _pair(photo)
    net = make_model(name)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = make_loss("l1")
    losses = []
    for _ in range(40):
        loss = loss_fn(net(lq), hq)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


def test_registry_names():
    assert set(TINY) <= set(MODEL_CONFIGS) and set(TINY) <= set(MODEL_NAMES)
    assert "osediff" in MODEL_NAMES and "SwinIR" in MODEL_NAMES


def test_lpips_without_weights_is_skipped_with_a_note(tmp_path, monkeypatch, caplog):
    from ggt_datasets.training.losses import make_lpips

    monkeypatch.setenv("GGT_WEIGHTS_DIR", str(tmp_path))  # an empty weights folder: nothing to load
    with caplog.at_level("WARNING"):
        assert make_lpips("cpu") is None
    assert "LPIPS unavailable" in caplog.text
