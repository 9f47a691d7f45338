"""Learned metrics through the weights folder, with files made here (random networks).

The networks are randomly initialised: the scores prove the loading path and the plumbing,
they are NOT real LPIPS/DISTS/NIQE values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision

from ggt_datasets import cli
from ggt_datasets.metrics import MissingWeightsError, create_metric, get_spec, list_metrics, to_tensor
from ggt_datasets.metrics import weights as W

LPIPS_CHNS = [64, 192, 384, 256, 256]
DISTS_CHNS = [3, 64, 128, 256, 512, 512]


def _small_state_dict(model: torch.nn.Module, keep: str, dtype=torch.float32) -> dict:
    """Real tensors for the `keep` submodule, stride-0 constants (a few bytes) elsewhere."""
    out = {}
    for k, v in model.state_dict().items():
        out[k] = v.to(dtype).clone() if k.startswith(keep) else torch.zeros(1, dtype=v.dtype).expand(v.shape)
    return out


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    import pyiqa.utils.download_util as du

    monkeypatch.setattr(du, "download_url_to_file", refuse)


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    (root / "checkpoints").mkdir()
    (root / "pyiqa").mkdir()
    alex = torchvision.models.alexnet(weights=None)
    torch.save(_small_state_dict(alex, "features"), root / "checkpoints/alexnet-owt-7be5be79.pth")
    vgg = torchvision.models.vgg16(weights=None)
    torch.save(_small_state_dict(vgg, "features", torch.float16), root / "checkpoints/vgg16-397923af.pth")
    lins = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHNS)}
    torch.save(lins, root / "pyiqa/LPIPS_v0.1_alex-df73285e.pth")
    dists = {
        "alpha": torch.rand(1, sum(DISTS_CHNS), 1, 1) * 0.1 + 0.05,
        "beta": torch.rand(1, sum(DISTS_CHNS), 1, 1) * 0.1 + 0.05,
    }
    torch.save(dists, root / "pyiqa/DISTS_weights-f5e65c96.pth")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    scipy.io.savemat(
        root / "pyiqa/niqe_modelparameters.mat",
        {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T + 36 * np.eye(36)},
    )
    return root, lins, dists


def _pair(real_photo, size=96, sigma=20.0):
    hq = real_photo("astronaut", 256)[:size, :size]
    rng = np.random.default_rng(1)
    lq = np.clip(hq + rng.normal(0, sigma, hq.shape), 0, 255).astype(np.uint8)
    return to_tensor(lq), to_tensor(hq)


def test_missing_weights_error_names_metric_file_and_commands(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(MissingWeightsError) as err:
        create_metric("lpips", weights_dir=tmp_path, device="cpu")
    msg = str(err.value)
    assert "'lpips'" in msg and "LPIPS_v0.1_alex-df73285e.pth" in msg and "alexnet-owt-7be5be79.pth" in msg
    assert "ggt weights download lpips" in msg and "ggt weights import" in msg and str(tmp_path) in msg
    # no download was attempted: _no_network turns any into an AssertionError
    assert isinstance(err.value, FileNotFoundError)  # the CLI prints it as one line


def test_lpips_loads_from_the_folder_only(fake_weights, real_photo, monkeypatch):
    root, lins, _ = fake_weights
    _no_network(monkeypatch)
    before = torch.hub.get_dir()
    metric = create_metric("lpips", weights_dir=root, device="cpu")
    assert torch.hub.get_dir() == before  # the torch.hub redirect is undone
    assert torch.equal(metric.model.net.lin0.model[1].weight, lins["lin0.model.1.weight"])
    lq, hq = _pair(real_photo)
    lq2, _ = _pair(real_photo, sigma=60.0)
    scores = metric(torch.cat([hq, lq, lq2]), torch.cat([hq, hq, hq]))
    assert scores.shape == (3,) and scores.dtype == torch.float64
    assert abs(float(scores[0])) < 1e-6 < float(scores[1]) < float(scores[2])


def test_dists_and_niqe_load_from_the_folder(fake_weights, real_photo, monkeypatch):
    root, _, dists = fake_weights
    _no_network(monkeypatch)
    metric = create_metric("dists", weights_dir=root, device="cpu")
    assert torch.allclose(metric.model.net.alpha, dists["alpha"])
    lq, hq = _pair(real_photo)
    s = metric(torch.cat([hq, lq]), torch.cat([hq, hq]))
    assert abs(float(s[0])) < 1e-4 < float(s[1])
    niqe = create_metric("niqe", weights_dir=root, device="cpu")
    v = niqe(torch.cat([hq, lq]))
    assert v.shape == (2,) and torch.isfinite(v).all() and float(v[0]) != float(v[1])


def test_learned_metric_input_checks(fake_weights, monkeypatch):
    root, _, _ = fake_weights
    _no_network(monkeypatch)
    metric = create_metric("lpips", weights_dir=root, device="cpu")
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        metric(x * 255, x)
    with pytest.raises(ValueError, match="full-reference"):
        metric(x)
    with pytest.raises(ValueError, match="differ in shape"):
        metric(x, torch.rand(1, 3, 64, 32))


class _FakeAfine:
    """Stands in for pyiqa's A-FINE: same restrictions (32-multiples, batch 1, in-place)."""

    def __init__(self):
        self.shapes = []

    def __call__(self, dis, ref=None):
        assert dis.shape[0] == 1 and dis.shape[2] % 32 == 0 and dis.shape[3] % 32 == 0
        self.shapes.append(tuple(dis.shape))
        dis.sub_(0.5)  # normalises in place, as pyiqa's does
        return dis.mean().reshape(1)


def test_afine_quirks_are_handled():
    from ggt_datasets.metrics.learned import PyiqaMetric

    metric = PyiqaMetric.__new__(PyiqaMetric)
    metric.spec, metric.model, metric._torch = get_spec("afine_nr"), _FakeAfine(), torch
    x = torch.rand(3, 3, 70, 100)
    keep = x.clone()
    out = metric(x)
    assert out.shape == (3,) and torch.equal(x, keep)  # the caller's tensor is untouched
    assert metric.model.shapes == [(1, 3, 64, 96)] * 3
    assert float(out[0]) == pytest.approx(float(keep[0, :, 3:67, 2:98].mean() - 0.5), abs=1e-6)
    with pytest.raises(ValueError, match="at least 32x32"):
        metric(torch.rand(1, 3, 20, 64))


def test_registry_agrees_with_pyiqa_and_suggests_names():
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    for name in list_metrics():
        spec = get_spec(name)
        if spec.source != "pyiqa":
            continue
        cfg = DEFAULT_CONFIGS[name]
        assert cfg["metric_mode"] == spec.kind, name
        assert cfg.get("lower_better", False) == spec.lower_better, name
        for rel in spec.weights:
            assert rel in W.WEIGHT_FILES, (name, rel)
    assert set(list_metrics("FR")) | set(list_metrics("NR")) == set(list_metrics())
    with pytest.raises(ValueError, match="did you mean 'maniqa'"):
        create_metric("manica")
    with pytest.raises(ValueError, match="needs vlm="):
        create_metric("vlm_r")


def test_weights_cli_list_import_download(fake_weights, tmp_path, capsys, monkeypatch):
    root, _, _ = fake_weights
    assert cli.main(["weights", "--weights-dir", str(root), "list"]) == 0
    out = capsys.readouterr().out
    assert "lpips            ready" in out and "musiq            MISSING" in out
    # import from a flat folder: files found by name, put where the loaders look
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "LPIPS_v0.1_alex-df73285e.pth").write_bytes((root / "pyiqa/LPIPS_v0.1_alex-df73285e.pth").read_bytes())
    dest = tmp_path / "w"
    assert cli.main(["weights", "--weights-dir", str(dest), "import", str(flat)]) == 0
    assert (dest / "pyiqa/LPIPS_v0.1_alex-df73285e.pth").is_file()
    # download: the URL each missing file comes from (no network: the fetcher is replaced)
    seen = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        seen.append(url)
        Path(dst).write_bytes(b"x")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert cli.main(["weights", "--weights-dir", str(dest), "download", "lpips"]) == 0
    assert seen == ["https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"]
    assert (dest / "checkpoints/alexnet-owt-7be5be79.pth").is_file()
    assert cli.main(["weights", "--weights-dir", str(dest), "download", "lpipz"]) == 2
    assert "did you mean 'lpips'" in capsys.readouterr().err


def test_timm_backbones_come_from_plain_files(tmp_path, monkeypatch):
    """topiq's ResNet50 is read from timm/<name>.safetensors; MANIQA's ViT is built unloaded."""
    import timm
    from safetensors.torch import save_file

    from ggt_datasets.metrics.learned import _TimmFromFile

    model = timm.create_model("resnet10t", pretrained=False)
    state = {k: torch.full(v.shape, 0.25, dtype=v.dtype) if v.is_floating_point() else v.clone()
             for k, v in model.state_dict().items()}
    file = tmp_path / "resnet10t.safetensors"
    save_file(state, str(file))

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    _no_network(monkeypatch)
    loaded = _TimmFromFile(timm, file).create_model("resnet10t", pretrained=True)
    assert torch.all(loaded.conv1[0].weight == 0.25)
    unloaded = _TimmFromFile(timm, None).create_model("resnet10t", pretrained=True)
    assert not torch.all(unloaded.conv1[0].weight == 0.25)
    assert _TimmFromFile(timm, None).__version__ == timm.__version__  # everything else is timm's


def test_weights_dir_env_and_cli_eval_with_lpips(fake_weights, real_photo, tmp_path, monkeypatch, capsys):
    from PIL import Image

    root, _, _ = fake_weights
    monkeypatch.setenv("GGT_WEIGHTS_DIR", str(root))
    assert W.weights_dir() == root
    _no_network(monkeypatch)
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    lq, hq = _pair(real_photo)
    for name, t in (("x", lq), ("y", hq)):
        Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(pred / f"{name}.png")
        Image.fromarray((hq[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(ref / f"{name}.png")
    out = tmp_path / "s.json"
    assert cli.main(["eval", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr,lpips,niqe",
                     "--device", "cpu", "--json", str(out)]) == 0
    rows = {r["id"]: r for r in json.loads(out.read_text())["rows"]}
    assert abs(rows["y"]["lpips"]) < 1e-6 < rows["x"]["lpips"]
    out = capsys.readouterr().out
    assert rows["y"]["psnr"] == "inf" and "lpips ↓" in out and "Loading pretrained" not in out


def test_musiq_checkpoint_loads_from_the_folder(tmp_path, monkeypatch):
    """A transformer NR metric: the whole network comes from pyiqa/<file> (strict load)."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    state = MUSIQ(pretrained=False, num_class=1).state_dict()
    # small tensors random, large ones stride-0 constants, so the file stays a few MB
    state = {k: v.clone() if v.numel() < 200_000 else torch.full((1,), 0.01).expand(v.shape)
             for k, v in state.items()}
    (tmp_path / "pyiqa").mkdir()
    torch.save(state, tmp_path / "pyiqa/musiq_koniq_ckpt-e95806b9.pth")
    _no_network(monkeypatch)
    metric = create_metric("musiq", weights_dir=tmp_path, device="cpu")
    assert torch.equal(metric.model.net.head.weight, state["head.weight"])
    score = metric(torch.rand(1, 3, 64, 80))
    assert score.shape == (1,) and torch.isfinite(score).all()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more: connection refused


def test_weights_download_network_failures_are_one_line(tmp_path, capsys, monkeypatch):
    import dataclasses
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.endswith("alexnet-owt-7be5be79.pth"):
                body = b"weights"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    try:
        for url_base, why in ((_closed_port_url(), "Connection refused"), (base, "HTTP 404 Not Found")):
            files = {rel: dataclasses.replace(wf, url=url_base + wf.name) for rel, wf in W.WEIGHT_FILES.items()}
            monkeypatch.setattr(W, "WEIGHT_FILES", files)
            dest = tmp_path / f"w{len(why)}"
            assert cli.main(["weights", "--weights-dir", str(dest), "download", "lpips"]) == 2
            captured = capsys.readouterr()
            lines = [ln for ln in captured.err.splitlines() if ln.startswith("ggt ")]  # progress bars aside
            assert len(lines) == 1 and "cannot download" in lines[0] and why in lines[0], captured.err
            assert "ggt weights import" in lines[0] and "Traceback" not in captured.err
            assert not [p for p in dest.rglob("*") if p.is_file() and p.suffix == ".partial"]
        # The file that did arrive before the 404 is kept, under its final name.
        assert (dest / "checkpoints/alexnet-owt-7be5be79.pth").read_bytes() == b"weights"
        assert "1 file(s) fetched before it are kept" in lines[0]
    finally:
        server.shutdown()
        server.server_close()
