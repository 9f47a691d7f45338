"""RAW/ggt_config.json from `ggt export`, `ggt synth --from-card`, and hostile synthesis inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ggt_datasets.cli import main
from ggt_datasets.synth.ledger import Ledger
from ggt_datasets.synth.prompts import load_templates
from ggt_datasets.testing.hostile import png_declaring

CUSTOM_RAIN = "Remove the rain streaks only. Keep everything else exactly as it is; add nothing."


def _synth(lq: Path, run: Path, *extra: str) -> list[str]:
    return ["synth", str(lq), "--run", str(run), "--no-progress", *extra]


def test_export_writes_the_config_and_from_card_reruns_it(tmp_path, lq_dir, kit, capsys):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "rain.txt").write_text(CUSTOM_RAIN + "\n")
    run, raw = tmp_path / "run", tmp_path / "raw"
    (lq_dir / "snow" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    assert main(_synth(lq_dir, run, "--generator", "classical", "--prompt-dir", str(prompts))) == 0
    ledger = Ledger(run)
    by_stem = {i["stem"]: i for i in ledger.items()}
    ledger.set_qc(by_stem["astronaut"]["id"], "reject", {"structure_ssim": 0.1}, ["ssim 0.10 < 0.30"])
    ledger.set_qc(by_stem["chelsea"]["id"], "accept", {"structure_ssim": 0.9}, [])
    assert main(["export", str(run), "--out", str(raw)]) == 0
    config = json.loads((raw / "ggt_config.json").read_text())
    templates = load_templates()
    expected_templates = {**{c: templates[c] for c in ("mixed", "haze", "snow", "low_light", "old_photo")},
                          "rain": CUSTOM_RAIN}
    assert config["synth"]["templates"] == expected_templates
    assert {k: config["synth"][k] for k in ("generator", "model", "prompt_mode", "vlm", "scale")} == {
        "generator": "classical", "model": "classical-baseline-v1", "prompt_mode": "fixed", "vlm": None, "scale": 1}
    assert config["counts"] == {"items": 7, "pending": 0, "done": 6, "blocked": 0, "failed": 1, "qc_accepted": 1,
                                "qc_rejected": 1, "review_accepted": 0, "review_rejected": 0, "exported": 5}
    assert config["qc"] == {"thresholds": None, "thresholds_file": None}  # this run's QC recorded no thresholds
    assert not list(raw.glob(".*.tmp"))  # written through a temporary file and a rename

    # New photos, the same configuration, from the raw folder (a built dataset holds the same file).
    new = tmp_path / "new"
    kit.write_image(new / "rain" / "fresh.png", kit.photo("rocket", 96))
    run2 = tmp_path / "run2"
    capsys.readouterr()
    assert main(_synth(new, run2, "--from-card", str(raw))) == 0
    assert "1 done" in capsys.readouterr().out
    item = Ledger(run2).items()[0]
    assert item["prompt"] == CUSTOM_RAIN and item["model"] == "classical-baseline-v1"
    settings = json.loads((run2 / "run.json").read_text())
    assert settings["templates"] == json.loads((run / "run.json").read_text())["templates"]

    # The card is the one source: a conflicting flag, a missing or broken card are one clear line.
    assert main(_synth(new, tmp_path / "run3", "--from-card", str(raw), "--generator", "gemini")) == 2
    assert "drop --generator" in capsys.readouterr().err
    assert main(_synth(new, tmp_path / "run3", "--from-card", str(tmp_path / "nowhere"))) == 2
    assert "ggt_config.json: not found" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ggt_config.json").write_text(json.dumps({"format": 1, "synth": {"generator": "classical",
                                                                   "prompt_mode": "fixed", "templates": {"fog": "x"}}}))
    assert main(_synth(new, tmp_path / "run3", "--from-card", str(tmp_path / "bad"))) == 2
    assert "unknown template(s) fog" in capsys.readouterr().err


def test_a_huge_declared_input_is_one_failed_item_in_bounded_memory(tmp_path, lq_dir, capsys):
    hostile = png_declaring(20000, 20000)
    hostile += b"\0" * (1_000_000 - len(hostile))  # ~1 MB on disk, 400 megapixels declared
    only = tmp_path / "only" / "rain"
    only.mkdir(parents=True)
    (only / "bomb.png").write_bytes(hostile)
    # Memory: what registering the file adds to the peak of a process that has imported everything.
    code = ("import resource, sys; from ggt_datasets.synth.ledger import Ledger; "
            "from ggt_datasets.synth.inputs import register_inputs; "
            "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; before = peak(); "
            "found = register_inputs(Ledger(sys.argv[2]), sys.argv[1]); "
            "print('bad', found['bad'], 'grew_kb', peak() - before)")
    res = subprocess.run([sys.executable, "-c", code, str(only.parent), str(tmp_path / "run0")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    words = res.stdout.split()
    grew_mb = int(words[words.index("grew_kb") + 1]) / 1024
    assert words[:2] == ["bad", "1"] and grew_mb < 100, res.stdout  # a decode would need 1.2 GB

    # In a run beside good photos: one failed item with the reason, the rest done, exit 0.
    (lq_dir / "rain" / "bomb.png").write_bytes(hostile)
    run = tmp_path / "run"
    assert main(_synth(lq_dir, run, "--generator", "classical")) == 0
    assert "1 unreadable (recorded as failed)" in capsys.readouterr().out
    ledger = Ledger(run)
    bomb = next(i for i in ledger.items() if i["stem"] == "bomb")
    reason = bomb["last_error"]
    assert bomb["state"] == "failed" and "bomb.png" in reason and "GGT_MAX_PIXELS" in reason
    assert "400000000 pixels" in reason or "20000x20000" in reason
    assert ledger.counts() == {"pending": 0, "done": 6, "blocked": 0, "failed": 1}
