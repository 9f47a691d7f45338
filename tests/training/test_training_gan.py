"""Real-ESRGAN-style GAN finetuning: the U-Net discriminator (official key layout, spectral norm),
the VGG perceptual loss against torchvision's own VGG, and two GAN steps + resume + two more that
end exactly where four uninterrupted steps do (discriminator and its optimizer restored)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from ggt_datasets.testing.tiny_vgg import tiny_vgg19_config, write_tiny_vgg19
from ggt_datasets.training import finetune
from ggt_datasets.training.gan import (
    DISCRIMINATOR_NAME,
    PERCEPTUAL_LAYERS,
    VGG19_URL,
    GANLoss,
    UNetDiscriminatorSN,
    VGGFeatures,
    load_discriminator,
    make_perceptual_loss,
)


def test_discriminator_layout_gradients_and_official_file(tmp_path):
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(num_feat=8)
    keys = set(d.state_dict())
    # Real-ESRGAN's UNetDiscriminatorSN layout: plain conv0/conv9, spectral-norm conv1..conv8 without bias.
    assert {"conv0.weight", "conv0.bias", "conv9.weight", "conv9.bias"} <= keys
    for i in range(1, 9):
        assert {f"conv{i}.weight_orig", f"conv{i}.weight_u", f"conv{i}.weight_v"} <= keys
        assert f"conv{i}.bias" not in keys
    assert d.conv1.weight_orig.shape == (16, 8, 4, 4) and d.conv3.weight_orig.shape == (64, 32, 4, 4)
    x = torch.rand(2, 3, 32, 32)
    out = d(x)
    assert out.shape == (2, 1, 32, 32)
    out.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    with pytest.raises(ValueError, match="divisible by 8"):
        d(torch.rand(1, 3, 20, 20))
    # An official-style file ({"params": state dict}) loads into the same network.
    torch.save({"params": d.state_dict()}, tmp_path / "net_d.pth")
    again = load_discriminator(tmp_path / "net_d.pth")
    d.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(d(x), again(x))
    with pytest.raises(ValueError, match="not a UNetDiscriminatorSN"):
        torch.save({"params": {"w": torch.zeros(1)}}, tmp_path / "bad.pth")
        load_discriminator(tmp_path / "bad.pth")


def test_gan_loss_values():
    loss = GANLoss()
    logits = torch.tensor([[2.0, -1.0]])
    # BCE with logits: -log(sigmoid(x)) for real, -log(1 - sigmoid(x)) for fake.
    real = (torch.nn.functional.softplus(-logits)).mean()
    fake = (torch.nn.functional.softplus(logits)).mean()
    assert torch.allclose(loss(logits, True), real) and torch.allclose(loss(logits, False), fake)
    assert float(loss(torch.zeros(3), True)) == pytest.approx(0.6931471805599453, abs=1e-7)


def test_vgg_features_match_torchvision_and_missing_file_is_clear(tmp_path):
    from torchvision.models.vgg import make_layers

    path = write_tiny_vgg19(tmp_path / "vgg19-tiny.pth")
    reference = make_layers(tiny_vgg19_config()).eval()
    reference.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(path).items()})
    vgg = VGGFeatures(torch.load(path), list(PERCEPTUAL_LAYERS))
    # torchvision's vgg19 puts conv1_2 at 2, conv2_2 at 7, conv3_4 at 16, conv4_4 at 25, conv5_4 at 34.
    assert vgg.taps == {2: "conv1_2", 7: "conv2_2", 16: "conv3_4", 25: "conv4_4", 34: "conv5_4"}
    assert len(vgg.features) == 35  # cut after conv5_4
    x = torch.rand(2, 3, 32, 32)
    h, expected = (x - vgg.mean) / vgg.std, {}
    with torch.no_grad():
        for i, layer in enumerate(reference):
            h = layer(h)
            if i in vgg.taps:
                expected[vgg.taps[i]] = h.clone()
            if i == 34:
                break
        got = vgg(x)
    assert all(torch.equal(got[n], expected[n]) for n in PERCEPTUAL_LAYERS)

    loss = make_perceptual_loss(path)
    y = torch.rand(2, 3, 32, 32)
    want = sum(w * (expected[n] - vgg(y)[n]).abs().mean() for n, w in PERCEPTUAL_LAYERS.items())
    assert torch.allclose(loss(x, y), want) and float(loss(x, x)) == 0.0
    assert not any(p.requires_grad for p in loss.parameters())

    missing = tmp_path / "weights" / "vgg19.pth"
    with pytest.raises(FileNotFoundError) as err:
        make_perceptual_loss(missing)
    assert str(missing) in str(err.value) and VGG19_URL in str(err.value)


def test_gan_two_steps_resume_two_more_equals_four(training_built, tmp_path):
    vgg = write_tiny_vgg19(tmp_path / "vgg19-tiny.pth")
    args = ["--model", "nafnet-tiny", "--dataset_name", str(training_built), "--gan", "--perceptual_weights_path",
            str(vgg), "--discriminator_num_feat", "8", "--resolution", "32", "--train_batch_size", "2",
            "--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "0",
            "--max_validation_samples", "1", "--validation_resolution", "32", "--report_to", "none", "--seed", "1"]
    parsed = finetune.parse_args(args)
    weights = (parsed.gan_weight, parsed.perceptual_weight, parsed.pixel_weight, parsed.learning_rate)
    assert weights == (0.1, 1.0, 1.0, 1e-4)  # Real-ESRGAN's
    assert parsed.use_ema and parsed.discriminator_learning_rate == 1e-4

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finetune.main(finetune.parse_args([*args, "--output_dir", str(whole)]))
    ckpt = {p.name for p in (whole / "checkpoint-2").iterdir()}
    assert {DISCRIMINATOR_NAME, "optimizer.bin", "optimizer_1.bin", "scheduler_1.bin", "model.safetensors"} <= ckpt
    initial = UNetDiscriminatorSN(num_feat=8).state_dict()
    at2 = load_file(str(whole / "checkpoint-2" / DISCRIMINATOR_NAME))
    assert not torch.equal(at2["conv1.weight_orig"], initial["conv1.weight_orig"])  # it trained
    assert "GAN" in (whole / "README.md").read_text()

    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")
    finetune.main(finetune.parse_args([*args, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"]))
    for name in (DISCRIMINATOR_NAME, "model.safetensors", f"checkpoint-4/{DISCRIMINATOR_NAME}",
                 "checkpoint-4/model.safetensors"):
        a, b = load_file(str(whole / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    rows = (resumed / finetune.TRAIN_LOG).read_text()
    assert '"d_loss"' in rows


def test_gan_user_errors(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        finetune.parse_args(["--dataset_name", "x", "--gan", "--resolution", "36"])
    with pytest.raises(ValueError, match="--gan trains classical"):
        finetune.parse_args(["--dataset_name", "x", "--gan", "--model", "osediff"])
