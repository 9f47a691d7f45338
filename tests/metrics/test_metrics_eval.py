"""`ggt eval`, the `evaluate` module, the demo step and VLM-R, on small real-photo data."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ggt_datasets import cli, schema
from ggt_datasets.backends.base import DegradationReport, JudgeResult, QualityRating
from ggt_datasets.metrics import create_metric, evaluate_module_path, psnr, ssim, to_tensor, vlm_r

REPO = Path(__file__).resolve().parents[2]


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


@pytest.fixture
def folders(tmp_path, real_photo):
    """pred/ and ref/ with three pairs (one in a subfolder, one as JPEG-named reference)."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    (pred / "sub").mkdir(parents=True)
    (ref / "sub").mkdir(parents=True)
    items = {"a": ("astronaut", 96), "b": ("coffee", 80), "sub/c": ("chelsea", 64)}
    arrays = {}
    for i, (key, (name, size)) in enumerate(items.items()):
        hq = real_photo(name, size)
        lq = _noisy(hq, 10 + 5 * i, i)
        Image.fromarray(hq).save(ref / f"{key}.png")
        Image.fromarray(lq).save(pred / f"{key}.png")
        arrays[key] = (lq, hq)
    return pred, ref, arrays


def _want(lq, hq, y=True, crop=0):
    a, b = to_tensor(lq), to_tensor(hq)
    return float(psnr(a, b, crop, y)), float(ssim(a, b, crop, y))


def test_cli_eval_folders_table_json_csv(folders, tmp_path, capsys):
    pred, ref, arrays = folders
    out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
    rc = cli.main(["eval", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr,ssim",
                   "--crop-border", "2", "--json", str(out_json), "--csv", str(out_csv)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "psnr ↑" in out and "ssim ↑" in out and "3 images" in out
    doc = json.loads(out_json.read_text())
    assert [r["id"] for r in doc["rows"]] == ["a", "b", "sub/c"]
    for row in doc["rows"]:
        p, s = _want(*arrays[row["id"]], y=True, crop=2)
        assert row["psnr"] == pytest.approx(p, abs=1e-9) and row["ssim"] == pytest.approx(s, abs=1e-9)
    assert doc["means"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in doc["rows"]]))
    assert doc["options"]["test_y_channel"] is True and doc["options"]["crop_border"] == 2
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["id"] for r in rows] == ["a", "b", "sub/c"] and float(rows[0]["psnr"]) == pytest.approx(
        doc["rows"][0]["psnr"])
    # RGB instead of Y
    assert cli.main(["eval", "--pred", str(pred), "--ref", str(ref), "--no-test-y-channel",
                     "--json", str(out_json)]) == 0
    row = json.loads(out_json.read_text())["rows"][0]
    assert row["psnr"] == pytest.approx(_want(*arrays["a"], y=False)[0], abs=1e-9)


def test_cli_eval_names_unmatched_and_mismatched_files(folders, capsys):
    pred, ref, _ = folders
    (pred / "extra.png").write_bytes((pred / "a.png").read_bytes())
    (ref / "b.png").unlink()
    assert cli.main(["eval", "--pred", str(pred), "--ref", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "no reference" in err and "extra" in err and "b" in err and err.count("\n") == 1
    (pred / "extra.png").unlink()
    shutil.copy(pred / "b.png", ref / "b.png")
    Image.open(pred / "a.png").crop((0, 0, 90, 96)).save(pred / "a.png")
    assert cli.main(["eval", "--pred", str(pred), "--ref", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "differ in size" in err and "a.png 90x96 vs 96x96" in err
    assert cli.main(["eval", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr,ssym"]) == 2
    assert "did you mean 'ssim'" in capsys.readouterr().err
    assert cli.main(["eval", "--pred", str(pred), "--metrics", "psnr"]) == 2
    assert "need references" in capsys.readouterr().err


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from ggt_datasets.build import build_dataset
    from ggt_datasets.sample import make_sample

    root = tmp_path_factory.mktemp("ds")
    make_sample(root / "raw", per_category=1, test_per_category=2, seed=0, size=64,
                categories=("rain", "haze"), progress=False)
    build_dataset(root / "raw", root / "built", progress=False)
    return root / "built"


def test_cli_eval_dataset_split_lq_vs_hq_and_predictions_by_id(built, tmp_path, capsys):
    import datasets

    ds = datasets.load_dataset(str(built), "rain", split="test")
    want = [_want(np.asarray(r["lq"].convert("RGB")), np.asarray(r["hq"].convert("RGB"))) for r in ds]
    out = tmp_path / "lq.json"
    assert cli.main(["eval", "--dataset", str(built), "--config", "rain", "--split", "test",
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["id"] for r in doc["rows"]] == ds[schema.ID]
    assert [r["psnr"] for r in doc["rows"]] == pytest.approx([w[0] for w in want], abs=1e-9)
    # predictions by id: the HQ itself -> PSNR inf, SSIM 1
    pred = tmp_path / "pred"
    pred.mkdir()
    for r in ds:
        r["hq"].save(pred / f"{r['id']}.png")
    assert cli.main(["eval", "--dataset", str(built), "--config", "rain", "--pred", str(pred),
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert all(r["psnr"] == "inf" and r["ssim"] == pytest.approx(1.0) for r in doc["rows"])
    (pred / f"{ds[0]['id']}.png").unlink()
    assert cli.main(["eval", "--dataset", str(built), "--config", "rain", "--pred", str(pred)]) == 2
    assert ds[0]["id"] in capsys.readouterr().err


def test_demo_writes_table_and_json(built, tmp_path):
    from ggt_datasets.metrics.demo import demo

    lines = demo(built, tmp_path / "m")
    assert lines[0].split()[:2] == ["psnr", "↑"] and any(line.startswith("rain") for line in lines)
    doc = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert set(doc["configs"]) == {"rain", "haze"} and doc["configs"]["haze"]["n"] == 2
    assert 5 < doc["configs"]["rain"]["means"]["psnr"] < 60


@pytest.mark.parametrize("how", ["clone", "installed"])
def test_evaluate_module_compute_and_add_batch(folders, how):
    import evaluate

    pred, ref, arrays = folders
    path = str(REPO / "metrics" / "ggt_ir") if how == "clone" else evaluate_module_path()
    module = evaluate.load(path)
    keys = ["a", "b", "sub/c"]
    want = [_want(*arrays[k], y=True, crop=1) for k in keys]
    # paths, PIL images and uint8 arrays, in one call
    preds = [pred / "a.png", Image.open(pred / "b.png"), arrays["sub/c"][0]]
    refs = [str(ref / "a.png"), Image.open(ref / "b.png"), arrays["sub/c"][1]]
    res = module.compute(predictions=preds, references=refs, metrics=["psnr", "ssim"], crop_border=1,
                         per_image=True)
    assert res["per_image"]["psnr"] == pytest.approx([w[0] for w in want], abs=1e-9)
    assert res["ssim"] == pytest.approx(np.mean([w[1] for w in want]), abs=1e-9)
    for p, r in zip(preds, refs, strict=True):  # add_batch, one pair at a time
        module.add_batch(predictions=[p], references=[r])
    res2 = module.compute(metrics=["psnr", "ssim"], crop_border=1)
    assert res2["psnr"] == pytest.approx(res["psnr"], abs=1e-9)
    for p, r in zip(preds, refs, strict=True):  # add, one example at a time
        module.add(prediction=p, reference=r)
    assert module.compute(metrics="psnr,ssim", crop_border=1)["ssim"] == pytest.approx(res["ssim"], abs=1e-9)
    with pytest.raises(ValueError, match="need references"):
        module.compute(predictions=preds, metrics=["psnr"])


def test_evaluate_module_without_references_for_nr_metrics(folders):
    import evaluate

    pred, _, _ = folders
    module = evaluate.load(evaluate_module_path())
    vlm = FakeVLM()
    res = module.compute(predictions=[str(pred / "a.png"), str(pred / "b.png")], metrics=["vlm_r"],
                         vlm=vlm, per_image=True)
    assert len(vlm.seen) == 2 and all(not with_lq for _, with_lq in vlm.seen)
    assert 0 <= res["vlm_r"] <= 100 and len(res["per_image"]["vlm_r"]) == 2


class FakeVLM:
    """Deterministic VLM: quality = 100 x the image's mean gradient energy, capped; fidelity from LQ."""

    name, model = "fake", "fake-1"

    def __init__(self):
        self.seen: list[tuple[int, bool]] = []

    def describe(self, image: bytes) -> DegradationReport:
        return DegradationReport(["noise"])

    def write_prompt(self, image: bytes, report: DegradationReport) -> str:
        return "remove noise"

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult:
        return JudgeResult(50, 50)

    def rate(self, image: bytes, lq: bytes | None = None) -> QualityRating:
        arr = np.asarray(Image.open(io.BytesIO(image)).convert("L"), dtype=np.float64)
        self.seen.append((len(image), lq is not None))
        quality = 100 - np.abs(np.diff(arr, axis=1)).mean()  # noisier -> lower
        fidelity = 150.0 if lq is not None else None  # out of range on purpose: clipped to 100
        return QualityRating(quality, fidelity, "fake")


def test_vlm_r_with_a_fake_backend(real_photo):
    hq = real_photo("astronaut", 128)
    lq = _noisy(hq, 25, 0)
    vlm = FakeVLM()
    ratings = vlm_r([hq, lq], vlm)
    assert ratings[0].quality > ratings[1].quality and ratings[0].fidelity is None
    with_lq = vlm_r([to_tensor(hq)[0]], vlm, lqs=[lq])
    assert with_lq[0].fidelity == 100.0 and vlm.seen[-1][1] is True
    metric = create_metric("vlm_r", vlm=vlm)
    scores = metric(torch.cat([to_tensor(hq), to_tensor(lq)]))
    assert scores.shape == (2,) and float(scores[0]) == pytest.approx(ratings[0].quality)
    with pytest.raises(ValueError, match="VLM backend"):
        vlm_r([hq], object())
