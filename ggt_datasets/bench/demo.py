"""The bench step of `ggt demo`: the classical generator with fixed and adaptive prompts, offline.

Adaptive prompts need a VLM, and no backend offers one offline, so the demo's adaptive prompts
are written by `StatsPromptWriter`: plain image statistics (noise, brightness, contrast) turned
into a degradation list, NOT a vision-language model. The classical generator ignores prompts, so
both rows come out alike: the demo shows the machinery (sets, runs, scores, tables, charts), the
real comparison needs API generators (`ggt bench-mfm --config bench.yaml`).

Example:
    >>> from ggt_datasets.bench.demo import run
    >>> for line in run(Path("out/bench")):  # doctest: +SKIP
    ...     print(line)
"""

from __future__ import annotations

from pathlib import Path

from ggt_datasets.backends.base import DegradationReport, JudgeResult, QualityRating


class StatsPromptWriter:
    """Describes degradations from image statistics; the `describe`/`write_prompt` half of a VLM."""

    name = "stats"
    model = "image-statistics-v1"

    def describe(self, image: bytes) -> DegradationReport:
        from ggt_datasets.backends.classical import noise_sigma
        from ggt_datasets.images import load_rgb

        img = load_rgb(image, name="LQ image")
        gray = img.mean(axis=2)
        found = {"noise": min(1.0, noise_sigma(img) / 20), "darkness": max(0.0, 1 - gray.mean() / 110),
                 "low contrast": max(0.0, 1 - gray.std() / 50)}
        kept = {k: round(float(v), 2) for k, v in found.items() if v > 0.2}
        return DegradationReport(degradations=list(kept), severity=kept, scene="", notes="from image statistics")

    def write_prompt(self, image: bytes, report: DegradationReport) -> str:
        what = ", ".join(report.degradations) or "the visible degradations"
        return f"Restore this photo: remove {what}; keep every object, colour and the composition unchanged."

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult:
        raise NotImplementedError("StatsPromptWriter only writes prompts; it cannot judge pairs")

    def rate(self, image: bytes, lq: bytes | None = None) -> QualityRating:
        raise NotImplementedError("StatsPromptWriter only writes prompts; it cannot rate quality (VLM-R)")


def run(out: Path) -> list[str]:
    """A short bench under `out`: classical x (fixed, adaptive) on 2 categories x 1 photo, 96 px."""
    from ggt_datasets.bench.mfm import BenchConfig, run_bench

    cfg = BenchConfig(generators=[{"name": "classical"}], prompt_modes=["fixed", "adaptive"], output_dir=str(out),
                      fidelity={"categories": ["rain", "low_light"], "per_category": 1, "size": 96, "seed": 0,
                                "metrics": ["psnr", "ssim", "lpips"]}, synth={"concurrency": 2}, n_boot=0)
    lines = run_bench(cfg, vlm=StatsPromptWriter())
    table = [line for line in lines if line.startswith("|")]
    keep = [i for i, h in enumerate(table[0].split("|")) if h.strip() in ("run", "psnr", "ssim", "lpips", "average",
                                                                          "cost_per_image_usd", "fidelity_done")]
    short = ["|" + "|".join(row.split("|")[i] for i in keep) + "|" for row in table]
    notes = [line for line in lines if line.startswith("- ")]
    return [f"bench: classical generator x fixed/adaptive prompts on {out / 'inputs' / 'fidelity'}", *short, *notes,
            f"tables, charts and contact sheet: {out}/bench.md, bench_scores.png, fidelity_vs_perception.png, "
            "contact_sheet.png"]


