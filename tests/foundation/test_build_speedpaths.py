"""`ggt build`'s fast paths keep its guarantees: same bytes whatever the parallelism, one walk of SRC,
staging folders named by the run's token, and no file removed for its name alone."""

from __future__ import annotations

import json

import datasets
import pytest

from ggt_datasets import build_shard, layouts
from ggt_datasets.atomic import is_complete
from ggt_datasets.build import MANIFEST, build_dataset
from ggt_datasets.build_owner import STAGING_PREFIX
from ggt_datasets.testing.release_trees import many_pairs


def _shard_bytes(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "data").rglob("*.parquet"))}


def test_parquet_bytes_do_not_depend_on_processes_or_threads(tmp_path, monkeypatch):
    src = many_pairs(tmp_path, n=60)
    monkeypatch.setattr(build_shard, "ROW_GROUP_BYTES", 20_000)  # several row groups per shard
    one = build_dataset(src, tmp_path / "one", layout="auto", max_shard_size="150KB", num_proc=1, progress=False)
    many = build_dataset(src, tmp_path / "five", layout="auto", max_shard_size="150KB", num_proc=5, progress=False)
    assert one.pairs_written == many.pairs_written == 60 and one.shards_written > 2
    assert _shard_bytes(tmp_path / "one") == _shard_bytes(tmp_path / "five")
    ids = [r["id"] for r in datasets.load_dataset(str(tmp_path / "five"), "rain", split="train")]
    assert ids == sorted(ids)  # rows in input order although checked in threads


def test_a_bad_pair_checked_in_a_thread_is_skipped_in_place(tmp_path):
    src = many_pairs(tmp_path, n=30, categories=("rain",))
    victim = src / "Train" / "Rain" / "HQ" / "00007.png"
    victim.write_bytes(victim.read_bytes()[:-200])  # cut: its IDAT stream no longer inflates
    report = build_dataset(src, tmp_path / "out", layout="auto", num_proc=4, progress=False)
    assert report.pairs_written == 29 and [s["id"] for s in report.skipped] == ["00007"]
    ids = [r["id"] for r in datasets.load_dataset(str(tmp_path / "out"), "rain", split="train")]
    assert ids == [f"{i:05d}" for i in range(30) if i != 7]


def test_source_is_walked_once(tmp_path, monkeypatch):
    src = many_pairs(tmp_path, n=12)
    (src / "meta_info_train.txt").write_text("".join(f"{i:05d}.png\n" for i in range(12)))
    calls = []
    real = layouts.visible_files
    monkeypatch.setattr(layouts, "visible_files", lambda *a, **k: calls.append(a) or real(*a, **k))
    report = build_dataset(src, tmp_path / "out", layout="auto", progress=False)
    assert len(calls) == 1 and report.pairs_written == 12
    assert report.layout["meta_info"] == "meta_info_train.txt"  # found in the same walk


@pytest.mark.parametrize(
    "name",
    [
        "data/rain/.train-00000-of-00001.parquet.abcd1234.tmp",  # the very name of one of our temporary shards
        "data/rain/.notes.txt.x_y_z_12.tmp",
        "data/.README.md.abcdefgh.tmp",
    ],
)
def test_user_files_named_like_temporary_files_are_never_removed(sample_raw, tmp_path, name):
    out = tmp_path / "out"
    build_dataset(sample_raw, out, progress=False)
    (out / name).write_bytes(b"a user's file")
    with pytest.raises(ValueError, match="did not write"):
        build_dataset(sample_raw, out, progress=False)
    assert (out / name).read_bytes() == b"a user's file"
    build_dataset(sample_raw, out, overwrite=True, progress=False)
    assert (out / name).read_bytes() == b"a user's file"
    assert datasets.load_dataset(str(out), "rain", split="train").num_rows == 2


def test_what_a_killed_run_left_in_its_staging_folder_is_removed_and_nothing_else(sample_raw, tmp_path):
    out = tmp_path / "out"
    build_dataset(sample_raw, out, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    token = "0123456789abcdef"
    stage = out / f"{STAGING_PREFIX}{token}" / "data" / "rain"
    stage.mkdir(parents=True)
    (stage / "train-00000-of-00001.parquet").write_bytes(b"complete, not yet renamed")
    (stage / ".train-00000-of-00001.parquet.k9_x2abc.tmp").write_bytes(b"cut by the kill")
    (out / "..ggt_build_manifest.json.q1w2e3r4.tmp").write_text("{")  # the manifest's own, cut
    manifest["staging"] = [token]  # what the killed run recorded before writing there
    (out / MANIFEST).write_text(json.dumps(manifest))
    report = build_dataset(sample_raw, out, progress=False)
    assert report.shards_reused == len(manifest["shards"])
    assert not (out / f"{STAGING_PREFIX}{token}").exists() and not list(out.rglob("*.tmp"))
    assert json.loads((out / MANIFEST).read_text())["staging"] == [] and is_complete(out)
    # a staging-like folder no manifest lists is someone else's
    other = out / f"{STAGING_PREFIX}fedcba9876543210" / "data" / "rain"
    other.mkdir(parents=True)
    (other / "train-00000-of-00001.parquet").write_bytes(b"not ours")
    with pytest.raises(ValueError, match="did not write"):
        build_dataset(sample_raw, out, progress=False)
    assert (other / "train-00000-of-00001.parquet").read_bytes() == b"not ours"
