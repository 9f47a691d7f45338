"""`ggt status` and `ggt export`: what a run holds, and its done items as a raw layout.

Export writes RAW/{split}/{category}/lq/{id}.{ext} (the LQ file's bytes, copied as they are),
RAW/{split}/{category}/hq/{id}.png (the normalised HQ; .jpg/.webp when the generator's own file
was kept as it was) and one RAW/metadata.jsonl row per item
with its provenance and QC scores, which `ggt build RAW --out DIR` turns into a dataset.
Items that QC or a reviewer rejected are left out unless `include_rejected`.

Export also writes RAW/ggt_config.json: the configuration that made the pairs (generator, model,
prompt mode and template texts, VLM, scale, QC thresholds when the run has QC results) and the
counts per stage. `ggt build` copies it beside the data; `ggt synth --from-card DIR` re-runs it.

Example:
    >>> from ggt_datasets.synth.export import export_run, run_status
    >>> run_status("runs/rain")["done"]           # doctest: +SKIP
    97
    >>> export_run("runs/rain", "raw")["written"]  # doctest: +SKIP
    95
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from ggt_datasets.raw import METADATA_FILE, is_safe_id, pair_dir, read_jsonl
from ggt_datasets.synth.ledger import STATES, Ledger, read_settings, sha256_bytes

CONFIG_FILE = "ggt_config.json"  # beside RAW/metadata.jsonl and in a built dataset's root
CONFIG_FORMAT = 1
TEMPLATES_FILE = "templates.json"  # RUN/templates.json: the template texts the run uses
QC_SETTINGS_FILE = "qc_config.json"  # RUN/ or RAW/qc_config.json: the thresholds QC used, if it wrote them


def write_run_templates(run_dir: str | os.PathLike, templates: dict[str, str]) -> None:
    """Store the template texts a run uses (run.json keeps only their hashes)."""
    atomic_write_json(Path(run_dir) / TEMPLATES_FILE, dict(sorted(templates.items())))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); restore it or export again") from None


def run_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Counts by state, cost, error reasons by count, throughput and settings of a run."""
    with Ledger(run_dir, create=False) as ledger:
        counts = ledger.counts()
        items = ledger.items()
        cache_entries = ledger.db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    reasons = Counter(_reason_kind(i["last_error"]) for i in items if i["state"] in ("failed", "blocked"))
    started = [i["started_at"] for i in items if i["started_at"]]
    finished = [i["done_at"] for i in items if i["done_at"]]
    seconds = (max(finished) - min(started)) if started and finished else 0.0
    gen_cost = sum(i["cost_usd"] or 0.0 for i in items)
    vlm_cost = sum(i["vlm_cost_usd"] or 0.0 for i in items)
    out: dict[str, Any] = {
        "total": len(items), **{s: counts[s] for s in STATES},
        "cost_usd": round(gen_cost + vlm_cost, 6),  # generator + VLM
        "generator_cost_usd": round(gen_cost, 6),
        "vlm_cost_usd": round(vlm_cost, 6),
        "requests": sum(i["requests"] or 0 for i in items),
        "vlm_requests": sum(i["vlm_requests"] or 0 for i in items),
        "errors": dict(reasons.most_common()),
        "items_per_minute": round(60.0 * len(finished) / seconds, 2) if seconds > 0 else None,
        "responses_cached": cache_entries,
        "attempts": sum(i["attempts"] or 0 for i in items),
        "by_category": dict(Counter(i["category"] for i in items)),
        "settings": read_settings(run_dir) or {},
    }
    return out


def _reason_kind(error: str | None) -> str:
    """Group errors by their first clause: 'transient 503: gemini ...: HTTP 503' -> 'transient 503'."""
    if not error:
        return "unknown"
    head = error.split(":", 1)[0].strip()
    return head if len(head) <= 60 else head[:57] + "..."


def format_status(status: dict[str, Any]) -> list[str]:
    """Printable lines for `ggt status`."""
    s = status.get("settings", {})
    lines = [f"run: generator {s.get('generator', '?')} model {s.get('model', '?')} "
             f"prompts {s.get('prompt_mode', '?')}",
             f"items: {status['total']} total  " + "  ".join(f"{k} {status[k]}" for k in STATES),
             f"cost so far: ${status['cost_usd']:.4f} (VLM ${status['vlm_cost_usd']:.4f})  "
             f"requests: {status['requests']} (+{status['vlm_requests']} VLM)  attempts: {status['attempts']}  "
             f"cached responses: {status['responses_cached']}"]
    if status["items_per_minute"]:
        lines.append(f"throughput: {status['items_per_minute']:.1f} items/min")
    for reason, n in status["errors"].items():
        lines.append(f"  {n:>6}  {reason}")
    return lines


def _rejected(item: dict[str, Any]) -> bool:
    return item.get("qc_decision") == "reject" or item.get("review") == "reject"


def metadata_row(item: dict[str, Any]) -> dict[str, Any]:
    """The metadata.jsonl row of one done item (schema column names, extras beside them)."""
    row: dict[str, Any] = {
        schema.ID: item["id"], "split": item["split"], schema.CATEGORY: item["category"],
        "source": item["source"] or item["stem"], "generator": item["model"], "prompt": item["prompt"],
        "prompt_mode": item["prompt_mode"], "review": item["review"],
    }
    for key, value in (item.get("qc_scores") or {}).items():
        # a score with a dataset column (schema.QC_SCORE_COLUMNS) goes there; others keep a qc_ name in `extra`
        row[schema.QC_SCORE_COLUMNS.get(key, key if key.startswith("qc_") else f"qc_{key}")] = value
    row.update(stem=item["stem"], backend=item["generator"],
               cost_usd=round((item["cost_usd"] or 0.0) + (item.get("vlm_cost_usd") or 0.0), 8),
               vlm_cost_usd=item.get("vlm_cost_usd") or None, vlm_requests=item.get("vlm_requests") or None,
               lq_sha256=item["lq_sha256"], hq_sha256=item["hq_sha256"], attempts=item["attempts"],
               normalize=item["normalize"], qc_decision=item["qc_decision"], qc_reasons=item["qc_reasons"])
    return {k: v for k, v in row.items() if v is not None}


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, include_rejected: bool = False) -> dict[str, Any]:
    """Write the run's done items into the raw layout at `out`; returns counts and problems.

    Rows already in RAW/metadata.jsonl for other ids are kept; ours are replaced. An item whose
    LQ file is gone or changed, or whose HQ does not match its recorded hash, is skipped and
    listed in "problems".
    """
    run_dir, out = Path(run_dir), Path(out)
    with Ledger(run_dir, create=False) as ledger:
        done = ledger.items("done")
        counts = ledger.counts()
        qc = dict(ledger.db.execute("SELECT qc_decision, COUNT(*) FROM items WHERE qc_decision IS NOT NULL"
                                    " GROUP BY qc_decision").fetchall())
        reviews = dict(ledger.db.execute("SELECT review, COUNT(*) FROM items WHERE review IS NOT NULL"
                                         " GROUP BY review").fetchall())
    report: dict[str, Any] = {"done": len(done), "written": 0, "rejected": 0, "problems": []}
    rows, dropped = [], set()
    for item in done:
        if _rejected(item) and not include_rejected:
            report["rejected"] += 1
            dropped.add(item["id"])  # exported before it was rejected: take it out again
            for side, ext in (("lq", item["lq_ext"]), ("hq", Path(item["hq_path"]).suffix)):
                (pair_dir(out, item["split"], item["category"], side) / f"{item['id']}{ext}").unlink(missing_ok=True)
            continue
        if not is_safe_id(item["id"]):
            report["problems"].append({"id": item["id"], "reason": "unsafe id"})
            continue
        lq = Path(item["src_path"])
        hq = run_dir / item["hq_path"]
        lq_bytes = lq.read_bytes() if lq.is_file() else None
        hq_bytes = hq.read_bytes() if hq.is_file() else None
        if lq_bytes is None or sha256_bytes(lq_bytes) != item["lq_sha256"]:
            report["problems"].append({"id": item["id"], "reason": f"LQ file missing or changed: {lq}"})
            continue
        if hq_bytes is None or sha256_bytes(hq_bytes) != item["hq_sha256"]:
            report["problems"].append({"id": item["id"], "reason": f"HQ missing or not the recorded one: {hq}"})
            continue
        lq_dir = pair_dir(out, item["split"], item["category"], "lq")
        hq_dir = pair_dir(out, item["split"], item["category"], "hq")
        atomic_write_bytes(lq_dir / f"{item['id']}{item['lq_ext']}", lq_bytes)
        atomic_write_bytes(hq_dir / f"{item['id']}{Path(item['hq_path']).suffix}", hq_bytes)
        rows.append(metadata_row(item))
        report["written"] += 1
    _merge_metadata(out / METADATA_FILE, rows, dropped)
    stages = {"items": sum(counts.values()), **counts, "qc_accepted": qc.get("accept", 0),
              "qc_rejected": qc.get("reject", 0), "review_accepted": reviews.get("accept", 0),
              "review_rejected": reviews.get("reject", 0), "exported": report["written"]}
    atomic_write_json(out / CONFIG_FILE, run_config(run_dir, stages, has_qc=bool(qc)))
    report["out"] = str(out)
    return report


def run_config(run_dir: str | os.PathLike, counts: dict[str, int], has_qc: bool) -> dict[str, Any]:
    """The ggt_config.json document of a run: what made its pairs, and the counts per stage."""
    run_dir = Path(run_dir)
    settings = read_settings(run_dir) or {}
    templates_path = run_dir / TEMPLATES_FILE
    templates = _read_json(templates_path) if templates_path.is_file() else _packaged_templates(settings)
    keys = ("generator", "model", "prompt_mode", "vlm", "vlm_model", "scale", "api_version")
    qc: dict[str, Any] | None = None
    if has_qc:
        qc_path = run_dir / QC_SETTINGS_FILE
        qc = {"thresholds": _read_json(qc_path) if qc_path.is_file() else None,
              "thresholds_file": QC_SETTINGS_FILE if qc_path.is_file() else None}
    return {"format": CONFIG_FORMAT, "synth": {**{k: settings.get(k) for k in keys}, "templates": templates,
                                                "template_sha256": settings.get("templates") or {}},
            "qc": qc, "counts": counts}


def _packaged_templates(settings: dict[str, Any]) -> dict[str, str]:
    """For a run made before templates.json: the packaged templates whose hashes it recorded."""
    from ggt_datasets.synth.prompts import load_templates, template_hashes

    packaged = load_templates()
    hashes = template_hashes(packaged)
    return {n: packaged[n] for n, h in (settings.get("templates") or {}).items() if hashes.get(n) == h}


def read_card_config(folder: str | os.PathLike) -> dict[str, Any]:
    """DIR/ggt_config.json of a built dataset or raw folder, checked enough to re-run it.

    Raises FileNotFoundError when it is missing and ValueError naming the field that is wrong.
    """
    from ggt_datasets.synth.prompts import PROMPT_MODES, check_templates

    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --from-card takes a dataset built by `ggt build` or a raw "
                                "folder written by `ggt export` (both hold ggt_config.json)")
    doc = _read_json(path)
    synth = doc.get("synth") if isinstance(doc, dict) else None
    if not isinstance(synth, dict) or doc.get("format") != CONFIG_FORMAT:
        raise ValueError(f"{path}: expected a ggt_config.json of format {CONFIG_FORMAT} with a 'synth' object")
    if not synth.get("generator"):
        raise ValueError(f"{path}: synth.generator is missing")
    if synth.get("prompt_mode") not in PROMPT_MODES:
        raise ValueError(f"{path}: synth.prompt_mode must be one of {', '.join(PROMPT_MODES)}")
    if not isinstance(synth.get("templates"), dict) or not synth["templates"]:
        raise ValueError(f"{path}: synth.templates is missing; export the run again with this version")
    synth["templates"] = check_templates(synth["templates"], f"{path}: synth.templates")
    return doc


def _merge_metadata(path: Path, rows: list[dict[str, Any]], dropped: set[str]) -> None:
    ours = {r["id"] for r in rows} | dropped
    kept = [r for r in read_jsonl(path) if str(r.get("id")) not in ours] if path.is_file() else []
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in kept + rows)
    atomic_write_text(path, text)
