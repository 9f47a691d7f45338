"""`ggt build` owns what it writes: manifest, foreign files refused, atomic writes, resume after a kill."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import datasets
import pyarrow.parquet as pq
import pytest

from ggt_datasets import atomic, build_owner
from ggt_datasets.atomic import is_complete
from ggt_datasets.build import MANIFEST, build_dataset
from ggt_datasets.cli import main
from ggt_datasets.testing.release_trees import TREES, many_pairs


def test_manifest_lists_every_file_written_and_marker_is_last(sample_raw, tmp_path):
    out = tmp_path / "out"
    build_dataset(sample_raw, out, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == set(manifest["shards"]) | set(manifest["files"]) | {MANIFEST, atomic.COMPLETE_MARKER}
    assert manifest["files"] == ["README.md", "build_report.json"]
    assert is_complete(out)
    assert json.loads((out / atomic.COMPLETE_MARKER).read_text())["pairs"] == 18


@pytest.mark.parametrize("foreign", ["data/rain/train-00000-of-00009.parquet", "README.md", "notes.txt"])
def test_foreign_files_are_refused_and_kept(sample_raw, tmp_path, capsys, foreign):
    out = tmp_path / "out"
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_bytes(b"mine, not ggt's")
    assert main(["build", str(sample_raw), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "did not write" in err and foreign in err and "--overwrite" in err and "Traceback" not in err
    assert (out / foreign).read_bytes() == b"mine, not ggt's"
    assert not (out / MANIFEST).exists()


def test_overwrite_replaces_foreign_dataset_files_only(sample_raw, tmp_path):
    out = tmp_path / "out"
    (out / "data" / "rain").mkdir(parents=True)
    (out / "data" / "rain" / "train-00000-of-00009.parquet").write_bytes(b"old")
    (out / "README.md").write_text("someone's card")
    (out / "notes.txt").write_text("keep me")
    assert main(["build", str(sample_raw), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "data" / "rain" / "train-00000-of-00009.parquet").exists()
    assert "someone's card" not in (out / "README.md").read_text()
    assert (out / "notes.txt").read_text() == "keep me"
    assert datasets.load_dataset(str(out), "rain", split="train").num_rows == 2
    # the next build without --overwrite still refuses: notes.txt is not ours
    with pytest.raises(ValueError, match="notes.txt"):
        build_dataset(sample_raw, out, progress=False)


def test_stale_shards_of_ours_are_removed(sample_raw, tmp_path):
    out = tmp_path / "out"
    build_dataset(sample_raw, out, max_shard_size="1KB", progress=False)
    assert (out / "data" / "rain" / "train-00001-of-00002.parquet").is_file()
    build_dataset(sample_raw, out, progress=False)
    assert sorted(p.name for p in (out / "data" / "rain").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]


def test_write_error_is_one_line_exit_2_and_previous_build_stays_usable(sample_raw, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    build_dataset(sample_raw, out, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*.parquet")}
    victim = next((sample_raw / "train" / "snow" / "hq").iterdir())
    os.utime(victim, ns=(1, 1))  # one shard must be rewritten

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(dst))

    monkeypatch.setattr(atomic.os, "replace", read_only)
    assert main(["build", str(sample_raw), "--out", str(out), "--num-proc", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only" in err and "Traceback" not in err
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == before
    assert not list(out.rglob("*.tmp"))
    assert datasets.load_dataset(str(out), "snow", split="train").num_rows == 2


def test_not_enough_free_space_stops_before_writing(sample_raw, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        build_owner.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000)
    )
    assert main(["build", str(sample_raw), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GB free" in err
    assert not (tmp_path / "out").exists()


def test_bad_jsonl_lines_are_reported_and_the_rest_is_used(sample_raw, tmp_path, capsys):
    lines = (sample_raw / "metadata.jsonl").read_text().splitlines()
    lines.insert(3, '{"id": "broken", "source": ')
    (sample_raw / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    (sample_raw / "review.jsonl").write_text('{"id": "x", "decision": "accept"}\nnot json\n')
    report = build_dataset(sample_raw, tmp_path / "out", progress=False)
    assert [r["path"].rsplit("/", 1)[-1] for r in report.bad_records] == ["metadata.jsonl:4", "review.jsonl:2"]
    assert "line 4: not valid JSON" in report.bad_records[0]["reason"]
    on_disk = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert on_disk["bad_records"] == report.bad_records
    ds = datasets.load_dataset(str(tmp_path / "out"), split="train")
    assert all(s.startswith("sample:") for s in ds["source"])  # every other row's metadata is kept
    assert report.pairs_written == 18
    assert main(["build", str(sample_raw), "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert "metadata.jsonl:4" in capsys.readouterr().err


def test_ggt_config_is_copied_and_summarised(sample_raw, tmp_path):
    config = {  # the format `ggt export` writes (ggt_datasets/synth/export.py run_config)
        "format": 1,
        "synth": {
            "generator": "gemini",
            "model": "gemini-3.1-flash-image-preview",
            "prompt_mode": "adaptive",
            "templates": {"rain": "Remove the rain ...", "haze": "Remove the haze ..."},
        },
        "qc": {"thresholds": {"structure_ssim": 0.3}},
        "counts": {"synthesised": 18, "accepted": 18},
    }
    (sample_raw / "ggt_config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    build_dataset(sample_raw, out, progress=False)
    assert json.loads((out / "ggt_config.json").read_text()) == config
    card = (out / "README.md").read_text()
    assert "- **model**: gemini-3.1-flash-image-preview" in card and "- **prompt_mode**: adaptive" in card
    assert "- **templates**: haze, rain" in card and '- **qc**: {"structure_ssim": 0.3}' in card
    assert "- **counts**: synthesised: 18, accepted: 18" in card
    assert "ggt_config.json" in json.loads((out / MANIFEST).read_text())["files"]


def _rows(out):
    rows = {}
    for path in sorted((out / "data").rglob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows[row["id"]] = (
                path.relative_to(out).as_posix(),
                row["lq"]["bytes"],
                row["hq"]["bytes"],
                row["category"],
            )
    return rows


def test_killed_build_resumes_to_the_same_parquet(tmp_path):
    src = many_pairs(tmp_path, n=200)
    full = tmp_path / "full"
    assert (
        build_dataset(src, full, layout="auto", max_shard_size="40KB", num_proc=1, progress=False).pairs_written == 200
    )
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "ggt_datasets.cli",
        "build",
        str(src),
        "--out",
        str(out),
        "--layout",
        "auto",
        "--max-shard-size",
        "40KB",
        "--num-proc",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not list(out.glob("data/*/*.parquet")):
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not is_complete(out)
    done_before = len(list(out.glob("data/*/*.parquet")))
    assert 0 < done_before
    report = build_dataset(src, out, layout="auto", max_shard_size="40KB", num_proc=1, progress=False)
    assert report.shards_reused >= done_before - 1 and report.shards_reused + report.shards_written == len(
        list(full.glob("data/*/*.parquet"))
    )
    assert _rows(out) == _rows(full)
    assert is_complete(out)
    assert not list(out.rglob("*.tmp"))


def test_layout_rebuild_reuses_all_shards(tmp_path):
    tree = TREES["ggt_release"](tmp_path)
    first = build_dataset(tree.src, tmp_path / "out", layout="auto", progress=False)
    again = build_dataset(tree.src, tmp_path / "out", layout="auto", progress=False)
    assert (first.shards_written, again.shards_written, again.shards_reused) == (8, 0, 8)


def test_rebuilt_folder_with_same_counts_does_not_load_stale_cached_rows(sample_raw, tmp_path):
    from ggt_datasets.images import encode_png
    from ggt_datasets.testing.release_trees import photo

    out = tmp_path / "ggt-100k"
    build_dataset(sample_raw, out, progress=False)
    first = datasets.load_dataset(str(out), "rain", split="train").with_format("arrow")[:]["hq"].to_pylist()
    victim = sorted((sample_raw / "train" / "rain" / "hq").iterdir())[0]
    new = encode_png(photo(5))
    victim.write_bytes(new)
    build_dataset(sample_raw, out, progress=False)
    again = datasets.load_dataset(str(out), "rain", split="train").with_format("arrow")[:]["hq"].to_pylist()
    assert [r["bytes"] for r in again] != [r["bytes"] for r in first]
    assert new in [r["bytes"] for r in again]
