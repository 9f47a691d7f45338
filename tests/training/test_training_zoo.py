"""The spandrel zoo: official-format checkpoints of every listed architecture are detected, load,
train (gradients reach every parameter), and go back out in the official layout."""

from __future__ import annotations

import pytest
import torch

from ggt_datasets.testing.checkpoints import DEFAULT_SCALES, OFFICIAL_LAYOUTS, write_official_checkpoint
from ggt_datasets.training import zoo
from ggt_datasets.training.zoo import ZOO, load_restorer, make_restorer, save_restorer

# architecture name spandrel reports, per zoo name
EXPECTED_ARCH = {
    "nafnet": "NAFNet", "swinir": "SwinIR", "restormer": "Restormer", "hat": "HAT", "dat": "DAT", "scunet": "SCUNet",
    "realesrgan": "ESRGAN", "realesr-compact": "Compact", "uformer": "Uformer", "retinexformer": "RetinexFormer",
}
# smallest input side each tiny model takes (Uformer: 4 halvings of 8-px windows; SCUNet: 64-px padding)
SIDE = {"uformer": 128, "scunet": 64}


def _input(name: str, batch: int = 2) -> torch.Tensor:
    side = SIDE.get(name, 32)
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1))


def test_the_zoo_lists_every_architecture_of_the_issue():
    assert set(EXPECTED_ARCH) == set(ZOO) == set(OFFICIAL_LAYOUTS)
    names = zoo.model_names()
    for n in ZOO:
        assert n in names and f"{n}-tiny" in names
    assert {"SPAN", "RCAN", "osediff"} <= set(names)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_official_checkpoint_is_detected_loaded_and_trainable(tmp_path, name):
    path = write_official_checkpoint(name, tmp_path / f"{name}.pth", seed=3)
    doc = torch.load(path, weights_only=True)
    key = OFFICIAL_LAYOUTS[name]
    assert (key in doc) if key else all(torch.is_tensor(v) for v in doc.values())
    net = load_restorer(path)
    scale = DEFAULT_SCALES.get(name, 1)
    assert (net.config.architecture, net.config.scale) == (EXPECTED_ARCH[name], scale)
    # the weights in the file are the ones in the model
    state = doc[key] if key else doc
    if name == "realesrgan":
        assert "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state  # Real-ESRGAN's names
        state = dict(zip(net.state_dict(), state.values(), strict=True))  # spandrel: ESRGAN's model.N names
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    # one backward: every parameter gets a non-zero gradient
    net.train()
    x = _input(name)
    y = net(x)
    assert y.shape == (2, 3, x.shape[-2] * scale, x.shape[-1] * scale)
    (y - torch.rand_like(y)).abs().mean().backward()
    dead = [k for k, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


@pytest.mark.parametrize("name", ["swinir", "realesrgan", "uformer", "scunet"])
def test_save_restorer_writes_our_folder_and_the_official_layout(tmp_path, name):
    net = load_restorer(write_official_checkpoint(name, tmp_path / "in.pth", seed=5)).eval()
    out = save_restorer(net, tmp_path / "out", model_name=name)
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "model_official.pth"}
    doc = torch.load(out / "model_official.pth", weights_only=True)
    key = OFFICIAL_LAYOUTS[name]
    assert (list(doc) == [key]) if key else ("params" not in doc and all(torch.is_tensor(v) for v in doc.values()))
    x = _input(name, batch=1)
    with torch.no_grad():
        want = net(x)
        from spandrel import ModelLoader  # the official file back through spandrel itself

        desc = ModelLoader().load_from_file(out / "model_official.pth")
        assert desc.architecture.id == EXPECTED_ARCH[name]
        # plain spandrel: SwinIR with its explicit attention, the zoo's through SDPA (float rounding apart)
        assert torch.allclose(desc.model.eval()(x), want, rtol=0, atol=1e-5)
        assert torch.equal(load_restorer(out).eval()(x), want)  # and our folder


def test_safetensors_and_hub_sources(tmp_path, monkeypatch):
    st = write_official_checkpoint("realesr-compact", tmp_path / "compact.safetensors", scale=2)
    assert load_restorer(st).config.architecture == "Compact"
    pth = write_official_checkpoint("nafnet", tmp_path / "hub" / "net_g.pth")
    calls = []

    def fake_download(repo_id, filename, **kw):
        calls.append((repo_id, filename))
        return str(pth)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert load_restorer("hf://me/restorers/x1/net_g.pth").config.architecture == "NAFNet"
    assert load_restorer("me/restorers:net_g.pth").config.architecture == "NAFNet"
    assert calls == [("me/restorers", "x1/net_g.pth"), ("me/restorers", "net_g.pth")]


def test_bad_sources_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_restorer(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot read this checkpoint"):
        load_restorer(junk)
    unknown = tmp_path / "unknown.pth"
    torch.save({"params": {"foo.weight": torch.zeros(3, 3)}}, unknown)
    with pytest.raises(ValueError, match="does not recognise this architecture"):
        load_restorer(unknown)
    with pytest.raises(ValueError, match="not a checkpoint file"):
        zoo.load_official(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_restorer(tmp_path)
    swinir = write_official_checkpoint("swinir", tmp_path / "swinir_x2.pth", scale=2)
    with pytest.raises(ValueError, match="SwinIR checkpoint, but --model is nafnet"):
        zoo.make_restorer_from_args("nafnet", str(swinir), 2)
    with pytest.raises(ValueError, match="x2 SwinIR model, but --scale is 1"):
        zoo.make_restorer_from_args("swinir", str(swinir), 1)


def test_any_spandrel_architecture_by_id():
    net = make_restorer("SPAN", num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2, scale=2)
    assert (net.config.architecture, net.config.scale) == ("SPAN", 2)
    with pytest.raises(ValueError, match="has scale 4, but scale 1"):
        make_restorer("span", num_in_ch=3, num_out_ch=3, feature_channels=8)
    with pytest.raises(ValueError, match="SPAN: .*num_in_ch"):
        make_restorer("SPAN")
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        make_restorer("unet")


def test_swinir_sdpa_attention_equals_spandrels_explicit_attention():
    """The zoo routes SwinIR's window attention through SDPA; the explicit original gives the same."""
    from spandrel.architectures.SwinIR.__arch.SwinIR import WindowAttention

    net = make_restorer("swinir-tiny", scale=2, depths=[2, 2], num_heads=[2, 2]).eval()
    plain = make_restorer("swinir-tiny", scale=2, depths=[2, 2], num_heads=[2, 2]).eval()
    for m in plain.modules():
        if isinstance(m, WindowAttention):
            del m.forward  # back to the class's explicit softmax(qk^T + bias + mask) v
    plain.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert torch.allclose(net(x), plain(x), atol=1e-5)
        assert not torch.equal(net(x), make_restorer("swinir-tiny", scale=2, depths=[2, 2], num_heads=[2, 2])(x))
