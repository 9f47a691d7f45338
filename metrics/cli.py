"""`ggt eval` (measure restored images) and `ggt weights` (the learned metrics' weights folder).

    ggt eval --pred OUT --ref HQ --metrics psnr,ssim,lpips --crop-border 4 --json scores.json
    ggt eval --dataset ggt-100k --config rain --split test --pred OUT     # predictions by id
    ggt eval --dataset ggt-100k --config rain --split test                # the LQ against HQ
    ggt eval --model RealESRGAN_x4plus.pth --dataset ggt-100k --config rain --split test --tile 512
    ggt weights list | ggt weights download lpips dists | ggt weights import ~/.cache/torch/hub
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from ggt_datasets import images, schema
from ggt_datasets.atomic import atomic_open, atomic_write_text

__all__ = ["add_cli", "image_files", "pair_folders"]

_EXAMPLES_SHOWN = 5


def image_files(folder: Path) -> dict[str, Path]:
    """Images under `folder` (recursively, ggt_datasets.images.image_files' policy) by relative path
    without suffix, e.g. 'sub/0001'. Raises FileNotFoundError / NotADirectoryError for a missing
    folder, ValueError when it holds no image or two files differ only in their suffix."""
    found: dict[str, Path] = {}
    for path in images.image_files(folder):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            raise ValueError(f"{found[key]} and {path} have the same name; keep one of them")
        found[key] = path
    if not found:
        raise ValueError(f"{folder}: no images ({', '.join(images.IMAGE_SUFFIXES)}) found")
    return found


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:_EXAMPLES_SHOWN])
    return shown + (f" and {len(names) - _EXAMPLES_SHOWN} more" if len(names) > _EXAMPLES_SHOWN else "")


def _size(path: Path) -> tuple[int, int]:
    from ggt_datasets.images import inspect_image

    return inspect_image(path).size


def pair_folders(pred_dir: Path, ref_dir: Path) -> tuple[list[str], list[Path], list[Path]]:
    """Pair images of two folders by relative name (suffix ignored); sizes must agree.

    Raises ValueError naming the unmatched files or the pairs whose sizes differ.
    """
    preds, refs = image_files(pred_dir), image_files(ref_dir)
    no_ref = sorted(set(preds) - set(refs))
    no_pred = sorted(set(refs) - set(preds))
    if no_ref or no_pred:
        parts = []
        if no_ref:
            parts.append(f"{len(no_ref)} prediction(s) with no reference in {ref_dir}: {_few(no_ref)}")
        if no_pred:
            parts.append(f"{len(no_pred)} reference(s) with no prediction in {pred_dir}: {_few(no_pred)}")
        raise ValueError("; ".join(parts) + " (files are paired by relative name, suffix ignored)")
    keys = sorted(preds)
    bad = []
    for k in keys:
        ps, rs = _size(preds[k]), _size(refs[k])
        if ps != rs:
            bad.append(f"{preds[k].name} {ps[0]}x{ps[1]} vs {rs[0]}x{rs[1]}")
    if bad:
        raise ValueError(f"{len(bad)} pair(s) differ in size (prediction vs reference): {_few(bad)}")
    return keys, [preds[k] for k in keys], [refs[k] for k in keys]


def _dataset_inputs(args: argparse.Namespace) -> tuple[list[str], list[Any], list[Any], list[Any]]:
    """ids, predictions, references, LQs for --dataset (predictions = LQ when no --pred)."""
    import datasets

    schema.check_split(args.split)
    if args.config not in schema.CONFIGS:
        raise ValueError(f"unknown config {args.config!r}; expected one of {', '.join(schema.CONFIGS)}")
    if not Path(args.dataset).is_dir():
        raise NotADirectoryError(f"{args.dataset}: not a folder (a built dataset, see `ggt build`)")
    ds = datasets.load_dataset(str(args.dataset), args.config, split=args.split)
    for col in (schema.ID, schema.LQ, schema.HQ):
        if col not in ds.column_names:
            raise ValueError(f"{args.dataset}: split {args.split} has no column {col!r}")
    # Bytes as stored (no decode into PIL here): load_rgb decodes them once, with our policy.
    ds = ds.cast_column(schema.LQ, datasets.Image(decode=False))
    ds = ds.cast_column(schema.HQ, datasets.Image(decode=False))
    ids = [str(i) for i in ds[schema.ID]]
    lqs = [_image_value(v, args.dataset) for v in ds[schema.LQ]]
    hqs = [_image_value(v, args.dataset) for v in ds[schema.HQ]]
    if not args.pred:
        return ids, lqs, hqs, lqs
    by_stem = {Path(k).name: p for k, p in image_files(Path(args.pred)).items()}
    missing = [i for i in ids if i not in by_stem]
    if missing:
        raise ValueError(
            f"{len(missing)} id(s) of {args.config}/{args.split} have no prediction in "
            f"{args.pred} (named <id>.png): {_few(missing)}"
        )
    return ids, [by_stem[i] for i in ids], hqs, lqs


def _image_value(value: dict[str, Any], where: str) -> Any:
    if value.get("bytes"):
        return value["bytes"]
    if value.get("path"):
        return value["path"]
    raise ValueError(f"{where}: an image cell has neither bytes nor path")


def _write_outputs(args: argparse.Namespace, result: Any, options: dict[str, Any]) -> None:
    def finite(v: float) -> float | str:
        return v if math.isfinite(v) else str(v)  # JSON has no inf; "inf" keeps it readable

    if args.json:
        doc = {
            "metrics": result.metrics,
            "means": {k: finite(v) for k, v in result.means.items()},
            "n": len(result.rows),
            "options": options,
            "rows": [{k: finite(v) if isinstance(v, float) else v for k, v in r.items()} for r in result.rows],
        }
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    if args.csv:
        with atomic_open(args.csv, "w", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["id", *result.metrics])
            writer.writeheader()
            writer.writerows(result.rows)


# ---- `ggt eval --model CHECKPOINT`: restore a split with a model, then score it ----
def _model_inputs(args: argparse.Namespace) -> tuple[list[str], list[Any], list[Any], list[Any], str]:
    """ids, restored images, references, LQs and a description, for --model with --dataset."""
    from ggt_datasets.training.inference import restore_all
    from ggt_datasets.training.zoo import CHECKPOINT_SUFFIXES, CONFIG_NAME, load_restorer

    if not args.dataset:
        raise ValueError("--model needs --dataset DIR (a built dataset) and its --config/--split")
    if args.pred:
        raise ValueError("give either --model (restore the LQ now) or --pred (restored images), not both")
    folder = Path(args.model)
    if folder.is_dir() and not (folder / CONFIG_NAME).is_file():
        files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)
        hint = f"; pass one of its checkpoint files, e.g. {folder / files[0]} ({len(files)} here)" if files else ""
        raise ValueError(f"{folder}: not a model folder (no {CONFIG_NAME}){hint}")
    model = load_restorer(args.model)
    ids, lqs, refs, _ = _dataset_inputs(argparse.Namespace(**{**vars(args), "pred": None}))
    preds = restore_all(model, ids, lqs, tile=args.tile, overlap=args.tile_overlap, save_dir=args.save_outputs,
                        device=args.device)
    arch = f"{model.config.architecture} x{model.config.scale}"
    return ids, preds, refs, lqs, f"{args.dataset} [{args.config}/{args.split}] restored by {args.model} ({arch})"


def cmd_eval(args: argparse.Namespace) -> int:
    from ggt_datasets.metrics.evaluation import evaluate_pairs, parse_metric_names

    names = parse_metric_names(args.metrics)
    vlm = None
    if "vlm_r" in names:
        from ggt_datasets.backends import make_vlm

        vlm = make_vlm(args.vlm, base_url=getattr(args, "base_url", None))  # no key needed on a loopback URL
    lqs = None
    if getattr(args, "model", None):
        ids, preds, refs, lqs, source = _model_inputs(args)
    elif args.dataset:
        ids, preds, refs, lqs = _dataset_inputs(args)
        source = f"{args.dataset} [{args.config}/{args.split}]" + (f" vs {args.pred}" if args.pred else " LQ vs HQ")
    else:
        if not args.pred:
            raise ValueError("give --pred DIR (with --ref DIR for full-reference metrics) or --dataset DIR")
        if args.ref:
            ids, preds, refs = pair_folders(Path(args.pred), Path(args.ref))
        else:
            files = image_files(Path(args.pred))
            ids, preds, refs = sorted(files), [files[k] for k in sorted(files)], None
        source = f"{args.pred}" + (f" vs {args.ref}" if args.ref else "")
    result, usage = _evaluate_metered(
        evaluate_pairs, preds, refs, names, ids=ids, crop_border=args.crop_border,
        test_y_channel=args.test_y_channel, device=args.device, lqs=lqs, vlm=vlm, weights_dir=args.weights_dir,
        progress=True,
    )
    if usage is None:
        return 2
    options = {"crop_border": args.crop_border, "test_y_channel": args.test_y_channel, "source": source}
    if vlm is not None:
        options.update(vlm=vlm.name, vlm_model=vlm.model, vlm_requests=usage.requests,
                       vlm_cost_usd=round(usage.cost_usd, 8))
    print(result.table(title="mean"))
    print(f"{source}; crop_border={args.crop_border}, test_y_channel={args.test_y_channel}")
    if vlm is not None:
        print(f"vlm_r: {usage.requests} request(s) to {vlm.name} {vlm.model}, ${usage.cost_usd:.4f}")
    _write_outputs(args, result, options)
    return 0


def _evaluate_metered(evaluate: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """(result, VLM usage) of evaluate(...); (None, None) after printing one line when the VLM
    cannot be reached or refuses (network down, key refused, server error)."""
    from ggt_datasets.backends.base import BackendRequestError, BlockedError, TransientBackendError
    from ggt_datasets.backends.usage import metered

    try:
        with metered() as usage:
            return evaluate(*args, **kwargs), usage
    except (TransientBackendError, BackendRequestError, BlockedError) as err:
        print(f"ggt eval: error: vlm_r: {err} (after {usage.requests} VLM request(s))", file=sys.stderr)
        return None, None


def cmd_weights(args: argparse.Namespace) -> int:
    from ggt_datasets.metrics.registry import METRICS
    from ggt_datasets.metrics.weights import (
        download_weights,
        file_status,
        import_weights,
        needed_files,
        weights_dir,
    )

    folder = weights_dir(args.weights_dir)
    learned = [m for m, s in METRICS.items() if s.weights]
    if args.weights_command == "list":
        print(f"weights folder: {folder}")
        for m in learned:
            files = needed_files(m)
            status = {rel: file_status(rel, folder) for rel in files}
            ready = all(v == "ok" for v in status.values())
            print(f"{m:16s} {'ready' if ready else 'MISSING'}")
            for rel, st in status.items():
                print(f"    {st:12s} {rel}")
        print("no weights needed: " + ", ".join(m for m, s in METRICS.items() if not s.weights))
        return 0
    if args.weights_command == "download":
        names = args.metrics or learned
        for m in names:
            needed_files(m)  # unknown names fail before any download
        from ggt_datasets.metrics.weights import DownloadError

        try:
            new = download_weights(names, folder)
        except DownloadError as err:
            kept = f" ({len(err.fetched)} file(s) fetched before it are kept)" if err.fetched else ""
            print(f"ggt weights: error: {err}{kept}", file=sys.stderr)
            return 2
        print(f"{len(new)} file(s) downloaded into {folder}")
        return 0
    copied = import_weights(args.source, folder)
    print(f"{len(copied)} file(s) copied into {folder}" + "".join(f"\n    {p}" for p in copied))
    return 0


def add_cli(subparsers: Any) -> None:
    """Add `ggt eval` and `ggt weights`."""
    p = subparsers.add_parser(
        "eval",
        help="measure restored images (PSNR/SSIM as BasicSR, LPIPS, NIQE, ...)",
        description="Pair predictions with references by relative file name (or a built dataset "
        "split by id) and print the mean of each metric; per-image rows go to --json/--csv.",
    )
    p.add_argument("--pred", help="folder of restored images")
    p.add_argument("--ref", help="folder of ground-truth images, paired by relative name")
    p.add_argument("--dataset", help="a built dataset folder (ggt build); evaluates --config/--split")
    p.add_argument("--config", default=schema.DEFAULT_CONFIG, help="dataset config (default: all)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--metrics", default="psnr,ssim", help="comma-separated (default: psnr,ssim)")
    p.add_argument("--crop-border", type=int, default=0, help="pixels cut from each edge (PSNR/SSIM)")
    p.add_argument(
        "--test-y-channel", action=argparse.BooleanOptionalAction, default=True,
        help="PSNR/SSIM on BT.601 Y (default: on; --no-test-y-channel for RGB)",
    )
    p.add_argument("--device", default=None, help="torch device for learned metrics")
    p.add_argument("--weights-dir", default=None, help="weights folder (default: $GGT_WEIGHTS_DIR)")
    p.add_argument("--vlm", default="gemini", help="VLM backend for vlm_r (default: gemini)")
    p.add_argument("--base-url", help="VLM endpoint for vlm_r, e.g. a proxy or a local test server (as ggt synth)")
    p.add_argument("--model", help="restore --dataset's LQ with this checkpoint first: a folder from finetune.py, "
                   "an official .pth/.ckpt/.safetensors file, hf://ORG/REPO/FILE or ORG/REPO:FILE")
    p.add_argument("--save-outputs", help="with --model: write the restored images here as <id>.png")
    p.add_argument("--tile", type=int, default=None,
                   help="with --model: LQ tile size for large images (default: whole images)")
    p.add_argument("--tile-overlap", type=int, default=32, help="with --model: tile overlap in LQ pixels (default 32)")
    p.add_argument("--json", help="write means and per-image rows as JSON")
    p.add_argument("--csv", help="write per-image rows as CSV")
    p.set_defaults(func=cmd_eval)

    w = subparsers.add_parser(
        "weights",
        help="list, download or import the learned metrics' weights",
        description="The learned metrics load every file from one folder ($GGT_WEIGHTS_DIR, "
        "default ~/.cache/ggt_datasets/weights) and never download while measuring.",
    )
    w.add_argument("--weights-dir", default=None, help="weights folder (default: $GGT_WEIGHTS_DIR)")
    ws = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    ws.add_parser("list", help="what each metric needs and what is present")
    d = ws.add_parser("download", help="fetch missing files (needs network)")
    d.add_argument("metrics", nargs="*", help="metric names (default: all learned metrics)")
    i = ws.add_parser("import", help="copy weight files in from a folder (e.g. ~/.cache/torch/hub)")
    i.add_argument("source", help="folder holding the files (searched recursively by name)")
    w.set_defaults(func=cmd_weights)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="ggt")
    add_cli(parser.add_subparsers(dest="command"))
    a = parser.parse_args()
    sys.exit(a.func(a))
