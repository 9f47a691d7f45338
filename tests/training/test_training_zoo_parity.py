"""Faithfulness: an official-format state dict written from BasicSR's own implementation (an
independent one: `basicsr-fixed`) gives the same output once loaded through the zoo (spandrel)."""

from __future__ import annotations

import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srvgg_arch import SRVGGNetCompact
from basicsr.archs.swinir_arch import SwinIR

from ggt_datasets.testing.checkpoints import random_state
from ggt_datasets.training.zoo import load_restorer

SWIN = dict(img_size=32, window_size=8, embed_dim=16, mlp_ratio=2.0, resi_connection="1conv")
CASES = {
    # name: (BasicSR model, the key its training code saves under, spandrel id, scale, tolerance)
    "swinir-x2": (lambda: SwinIR(upscale=2, depths=[2, 2], num_heads=[2, 2], upsampler="pixelshuffle", **SWIN),
                  "params", "SwinIR", 2, 1e-5),
    "swinir-x1": (lambda: SwinIR(upscale=1, depths=[2], num_heads=[2], upsampler="", **SWIN),
                  "params", "SwinIR", 1, 1e-5),
    # RRDBNet: spandrel reads num_grow_ch as the official 32
    "rrdbnet-x4": (lambda: RRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=32),
                   "params_ema", "ESRGAN", 4, 0),
    "rrdbnet-x2": (lambda: RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=32),
                   "params_ema", "ESRGAN", 2, 0),
    "srvgg-x4": (lambda: SRVGGNetCompact(3, 3, num_feat=8, num_conv=2, upscale=4), "params", "Compact", 4, 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_zoo_output_equals_basicsr(tmp_path, case):
    build, key, arch, scale, atol = CASES[case]
    torch.manual_seed(0)
    ref = build().eval()
    state = random_state(ref, seed=7)
    ref.load_state_dict(state)
    torch.save({key: state}, tmp_path / "net_g.pth")
    net = load_restorer(tmp_path / "net_g.pth").eval()
    assert (net.config.architecture, net.config.scale) == (arch, scale)
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = ref(x), net(x)
    assert got.shape == want.shape == (2, 3, 24 * scale, 40 * scale)
    assert float(want.abs().max()) > 0.1  # a real signal, not zeros
    if atol == 0:
        assert torch.equal(got, want)
    else:  # SwinIR: the zoo's SDPA attention vs BasicSR's explicit softmax, float32 rounding
        assert torch.allclose(got, want, rtol=0, atol=atol), float((got - want).abs().max())


def test_paper_sized_real_esrgan_configs_match_basicsr():
    """RealESRGAN_x4plus (RRDBNet 64 x 23) and realesr-general-x4v3 (SRVGGNetCompact 64 x 32)."""
    from ggt_datasets.training.zoo import count_parameters, make_restorer

    ours = make_restorer("realesrgan", scale=4)
    theirs = RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    assert count_parameters(ours) == count_parameters(theirs)
    # spandrel keeps the original ESRGAN key names; the official layout written out is BasicSR's
    from ggt_datasets.training.zoo import official_state

    assert list(official_state(ours)["params_ema"]) == list(theirs.state_dict())
    compact = make_restorer("realesr-compact", scale=4)
    assert count_parameters(compact) == count_parameters(SRVGGNetCompact(3, 3, num_feat=64, num_conv=32, upscale=4))


@pytest.mark.parametrize("case", sorted(CASES))
def test_basicsr_loads_what_the_zoo_saves(tmp_path, case):
    """save_restorer's model_official.pth goes back into BasicSR's own class (strict) and agrees."""
    from ggt_datasets.training.zoo import save_restorer

    build, key, _, _, atol = CASES[case]
    ref = build().eval()
    ref.load_state_dict(random_state(ref, seed=11))
    torch.save({key: ref.state_dict()}, tmp_path / "in.pth")
    out = save_restorer(load_restorer(tmp_path / "in.pth"), tmp_path / "out")
    back = build().eval()
    back.load_state_dict(torch.load(out / "model_official.pth", weights_only=True)[key], strict=True)
    for (k1, v1), (k2, v2) in zip(ref.state_dict().items(), back.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
