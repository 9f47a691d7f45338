"""`ggt build --layout auto|FILE.yaml`: release-like trees of real photos build and load per config."""

from __future__ import annotations

import datasets
import pytest

from ggt_datasets import schema
from ggt_datasets.build import build_dataset, dry_run
from ggt_datasets.cli import main
from ggt_datasets.layouts import (
    Layout,
    LayoutError,
    category_name,
    infer_layout,
    load_layout,
    match_layout,
)
from ggt_datasets.testing.release_trees import TREES, write_pair


def _flags(tree) -> dict:
    return dict(zip(tree.flags[::2], tree.flags[1::2], strict=True))


@pytest.mark.parametrize("name", sorted(TREES))
def test_release_tree_builds_with_auto_and_loads_per_config(name, tmp_path, capsys):
    tree = TREES[name](tmp_path)
    out = tmp_path / "out"
    assert main(["build", str(tree.src), "--out", str(out), "--layout", "auto", *tree.flags]) == 0
    assert "Traceback" not in capsys.readouterr().err
    for config, per_split in tree.expected.items():
        ds = datasets.load_dataset(str(out), config)
        assert {s: ds[s].num_rows for s in ds} == per_split, config
    loaded = datasets.load_dataset(str(out), schema.DEFAULT_CONFIG)
    assert set(loaded) == set(tree.expected[schema.DEFAULT_CONFIG])
    row = loaded[next(iter(loaded))][0]
    assert row["hq"].size[0] in (row["lq"].size[0], 2 * row["lq"].size[0])
    assert row["source"].split("/")[-1].split(".")[0].startswith(row["id"])  # provenance: the LQ's path in SRC


@pytest.mark.parametrize("name", sorted(TREES))
def test_dry_run_yaml_round_trips_as_layout_file(name, tmp_path):
    tree = TREES[name](tmp_path)
    flags = _flags(tree)
    text = dry_run(tree.src, "auto", flags.get("--split"), flags.get("--category"))
    yaml_part = text.split("\n\n# ")[0] + "\n"
    layout_file = tmp_path / "layout.yaml"
    layout_file.write_text(yaml_part)
    inferred = infer_layout(tree.src, flags.get("--split"), flags.get("--category"))
    assert load_layout(layout_file) == inferred
    key = [(p.split, p.category, p.id, p.lq, p.hq) for p in match_layout(tree.src, inferred).pairs]
    assert [
        (p.split, p.category, p.id, p.lq, p.hq) for p in match_layout(tree.src, load_layout(layout_file)).pairs
    ] == key
    assert dry_run(tree.src, str(layout_file)) == text  # the same listing through the file
    assert f"# {sum(tree.expected['all'].values())} pairs" in text
    assert not (tmp_path / "out").exists()


def test_dry_run_cli_writes_nothing_and_lists_unmatched(tmp_path, capsys):
    tree = TREES["basicsr_meta_info"](tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["build", str(tree.src), "--layout", "auto", "--category", "mixed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert "meta_info: meta_info_DF2K_GT.txt" in out and "# 2 pairs" in out
    assert "0003.png: not listed in meta_info_DF2K_GT.txt" in out
    assert "0003x2.png: its HQ is not listed in meta_info_DF2K_GT.txt" in out


def test_ambiguous_side_folders_list_the_candidates(tmp_path, capsys):
    src = tmp_path / "amb"
    for i in range(2):
        write_pair(src / "input" / f"{i}.png", src / "target" / f"{i}.png", i)
        write_pair(src / "input" / f"{i}.png", src / "gt" / f"{i}.png", i)
    with pytest.raises(LayoutError, match="more than one way") as err:
        infer_layout(src, category="rain")
    assert "{input|target}" in str(err.value) and "{input|gt}" in str(err.value)
    assert main(["build", str(src), "--out", str(tmp_path / "o"), "--layout", "auto", "--category", "rain"]) == 2
    assert "{input|gt}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unrecognised_level_and_missing_category_are_errors(tmp_path):
    src = tmp_path / "existing"
    write_pair(src / "DF2K" / "LQ" / "a.png", src / "DF2K" / "HQ" / "a.png", 0)
    write_pair(src / "LSDIR" / "LQ" / "b.png", src / "LSDIR" / "HQ" / "b.png", 1)
    with pytest.raises(LayoutError, match="neither splits nor categories") as err:
        infer_layout(src)
    assert "DF2K (2 files)" in str(err.value) and "LSDIR (2 files)" in str(err.value)
    with pytest.raises(LayoutError, match="--category"):
        match_layout(src / "DF2K", infer_layout(src / "DF2K"))
    # each existing set builds into its own dataset with --category
    report = build_dataset(src / "DF2K", tmp_path / "df2k", layout="auto", category="mixed", progress=False)
    assert report.counts == {"all": {"train": 1, "test": 0}, "mixed": {"train": 1}}
    with pytest.raises(LayoutError, match="no LQ/HQ side folders"):
        infer_layout(src / "DF2K" / "LQ")


def test_layout_file_with_placeholders_in_names_and_maps(tmp_path):
    src = tmp_path / "named"
    write_pair(src / "lq" / "Rainy-train_0001.png", src / "hq" / "Rainy-train_0001_clean.png", 1)
    write_pair(src / "lq" / "Fog-test_0002.png", src / "hq" / "Fog-test_0002_clean.png", 2)
    write_pair(src / "lq" / "Sand-train_0003.png", src / "hq" / "Sand-train_0003_clean.png", 3)
    (src / "lq" / "stray.png").write_bytes((src / "lq" / "Rainy-train_0001.png").read_bytes())
    (tmp_path / "l.yaml").write_text(
        'lq: "lq/{category}-{split}_{id}.{ext}"\nhq: "hq/{category}-{split}_{id}_clean.{ext}"\n'
        "categories: {Fog: haze}\n"
    )
    found = match_layout(src, load_layout(tmp_path / "l.yaml"))
    assert [(p.split, p.category, p.id) for p in found.pairs] == [("test", "haze", "0002"), ("train", "rain", "0001")]
    reasons = {p.path.split("/")[-1]: p.reason for p in found.unmatched}
    assert "maps to no config" in reasons["Sand-train_0003.png"] and "'Sand'" in reasons["Sand-train_0003.png"]
    assert "matches neither" in reasons["stray.png"]


def test_layout_file_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, match in (
        ("lq: a/{id}.{ext}\n", "hq"),
        ("lq: a/{id}.{ext}\nhq: b/{idx}.{ext}\n", "unknown placeholder"),
        ("lq: '{split}/{id}.{ext}'\nhq: b/{id}.{ext}\n", "both"),
        ("lq: a/{id}.{ext}\nhq: b/{id}.{ext}\ncategories: {Rain: drizzle}\n", "drizzle"),
        ("lq: a/{id}.{ext}\nhq: b/{id}.{ext}\ncolour: red\n", "unknown key"),
        ("lq: ../{id}.{ext}\nhq: b/{id}.{ext}\n", "inside SRC"),
    ):
        bad.write_text(text)
        with pytest.raises(LayoutError, match=match):
            load_layout(bad)


@pytest.mark.parametrize(
    "folder, config",
    [
        ("Low-light", "low_light"),
        ("LowLight", "low_light"),
        ("low_light", "low_light"),
        ("Old Photo", "old_photo"),
        ("Hazy", "haze"),
        ("Rainy", "rain"),
        ("SNOW", "snow"),
        ("General", "mixed"),
        ("Sand", None),
    ],
)
def test_category_names_are_normalised(folder, config):
    assert category_name(folder) == config


def test_layout_checks_itself():
    with pytest.raises(LayoutError, match="once"):
        Layout("a/{id}{id}.{ext}", "b/{id}.{ext}")
    assert Layout("a/{id}.{ext}", "b/{id}.{ext}", category="rain").to_yaml().startswith("lq: a/{id}.{ext}")
