"""Evaluation of `ggt experiment` runs on paired and NR-only test sets, cached per run and set.

Paired sets: center crops (eval.resolution) of up to eval.max_samples test pairs, the model's
output against the HQ: PSNR / SSIM on RGB with BasicSR's conventions (as finetune validation), and
LPIPS / DISTS when their weights are present. NR sets: center crops (eval.nr_resolution) of the
folder's images, restored, scored by the NR metrics whose weights are present, and VLM-R when
eval.vlm names a VLM. A metric that cannot run goes to `missing` with its reason.

Example:
    >>> ev = Evaluator(cfg)                                        # doctest: +SKIP
    >>> ev.scores(run_folder, {"name": "nafnet"}, cache_folder)    # doctest: +SKIP
    {'ggt-test': {'psnr': 24.1, 'ssim': 0.71}, 'realdeg': {'vlm_r': 63.0}}
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets.atomic import atomic_write_json

PAIRED_DEFAULT = ("psnr", "ssim", "lpips", "dists")
NR_DEFAULT = ("musiq", "maniqa", "clipiqa", "afine_nr", "vlm_r")


def load_restorer(folder: Path, model: str):
    """The trained model of a run folder."""
    if model == "osediff":
        from ggt_datasets.training.osediff import OSEDiff

        return OSEDiff.from_pretrained(folder)
    from ggt_datasets.training.models import load_pretrained

    return load_pretrained(folder)


def nr_images(folder: str, size: int, limit: int) -> list[np.ndarray]:
    """Center crops (at most size x size) of the images of an NR folder, as uint8 RGB arrays."""
    from ggt_datasets.bench.mfm import image_files
    from ggt_datasets.images import load_rgb

    files = image_files(folder, "test set folder")
    out = []
    for f in files[:limit]:
        arr = load_rgb(f)
        h, w = arr.shape[:2]
        s = min(size, h, w)
        top, left = (h - s) // 2, (w - s) // 2
        out.append(np.ascontiguousarray(arr[top:top + s, left:left + s]))
    return out


class Evaluator:
    """Test sets and metrics of an experiment, loaded once; `scores` evaluates one run (cached)."""

    def __init__(self, cfg: Any):
        from ggt_datasets.bench.report import metric_or_reason
        from ggt_datasets.training.finetune import load_validation_batch

        self.cfg = cfg
        ev = cfg.eval
        vlm = None
        if ev.get("vlm"):
            from ggt_datasets.backends import make_vlm

            vlm = make_vlm(ev["vlm"]["name"], **{k: v for k, v in ev["vlm"].items() if k != "name"})
        self.missing: dict[str, dict[str, str]] = {}
        self.sets: dict[str, dict[str, Any]] = {}
        limit = int(ev.get("max_samples", 500))
        for i, t in enumerate(cfg.test_sets):
            name = str(t.get("name") or f"set{i}")
            paired = "paired" in t
            default = PAIRED_DEFAULT if paired else NR_DEFAULT
            wanted = list(ev.get("paired_metrics" if paired else "nr_metrics") or default)
            metrics, missing = {}, {}
            for m in wanted:
                fn, why = metric_or_reason(m, vlm)
                if why:
                    missing[m] = why
                else:
                    metrics[m] = fn
            if paired:
                args = argparse.Namespace(
                    validation_dataset_name=t["paired"], validation_dataset_config_name=t.get("config", "all"),
                    dataset_name=t["paired"], dataset_config_name=t.get("config", "all"), cache_dir=None,
                    max_validation_samples=limit, validation_resolution=int(ev.get("resolution", 512)), resolution=512,
                    scale=int(cfg.train.get("scale", 1)), small_images=cfg.train.get("small_images", "pad"))
                data = load_validation_batch(args)
                if data is None:
                    raise ValueError(f"test_sets[{i}] {t['paired']}: no test pairs to evaluate on")
            else:
                data = nr_images(t["nr"], int(ev.get("nr_resolution", 512)), limit)
            self.sets[name] = {"paired": paired, "metrics": metrics, "data": data}
            self.missing[name] = missing

    def scores(self, folder: Path, model: dict[str, Any], cache: Path) -> dict[str, dict[str, float]]:
        """{set: {metric: mean}} of the run in `folder`; each set's scores cached in cache/{set}.json."""
        import torch

        out: dict[str, dict[str, float]] = {}
        restorer = None
        for name, s in self.sets.items():
            path = cache / f"{name}.json"
            if path.is_file():
                stored = json.loads(path.read_text())
                if sorted(stored) == sorted(s["metrics"]):
                    out[name] = stored
                    continue
            if restorer is None:
                restorer = load_restorer(folder, model["name"])
                if torch.cuda.is_available():
                    restorer = restorer.cuda()
            out[name] = self._paired(restorer, s) if s["paired"] else self._nr(restorer, s)
            atomic_write_json(path, out[name])
        return out

    @staticmethod
    def _paired(model: Any, s: dict[str, Any]) -> dict[str, float]:
        import torch

        from ggt_datasets.training.finetune import evaluate

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        _, pred = evaluate(model, s["data"], device, contextlib.nullcontext)
        hq = s["data"]["hq"]
        return {m: float(fn(pred, hq).mean()) for m, fn in s["metrics"].items()}

    @staticmethod
    def _nr(model: Any, s: dict[str, Any]) -> dict[str, float]:
        import torch

        from ggt_datasets.training.osediff import restore

        multiple = getattr(model, "size_multiple", 8)
        values: dict[str, list[float]] = {m: [] for m in s["metrics"]}
        for arr in s["data"]:
            restored = np.array(restore(model, [arr], multiple=multiple)[0])
            t = torch.from_numpy(restored).permute(2, 0, 1).float()[None] / 255
            lq = torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 255
            for m, fn in s["metrics"].items():
                values[m].append(float((fn(t, lq=lq) if m == "vlm_r" else fn(t)).mean()))
        return {m: float(np.mean(v)) for m, v in values.items()}
