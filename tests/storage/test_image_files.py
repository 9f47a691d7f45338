"""The one image-folder scanner (ggt_datasets.images.image_files) and the readers that use it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from ggt_datasets import images, schema
from ggt_datasets.images import IMAGE_SUFFIXES, encode_png, image_files, is_image_name, visible_files


def _png(path: Path, seed: int = 0) -> Path:
    """A small crop of a real photo, so each file decodes (callers may read them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.astronaut()
    path.write_bytes(encode_png(np.ascontiguousarray(photo[seed * 8 : seed * 8 + 24, :32])))
    return path


def _names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in ("b.png", "a.JPG", "c.JpEg", "d.webp", "sub/e.png", "sub/deeper/f.PNG", "a-b/g.png"):
        _png(root / rel)
    (root / "notes.txt").write_text("not an image")
    (root / "README").write_text("no suffix")
    _png(root / ".hidden.png")
    _png(root / ".cache" / "h.png")  # inside a hidden folder
    _png(root / ".b.png.k2j3h4.tmp")  # atomic.py's temporary name for b.png
    _png(root / "i.png.tmp")
    (root / "sub" / "folder.png").mkdir()  # a folder named like an image
    return root


def test_lists_visible_images_sorted_any_case(tree: Path) -> None:
    found = image_files(tree)
    assert _names(found, tree) == [
        "a-b/g.png", "a.JPG", "b.png", "c.JpEg", "d.webp", "sub/deeper/f.PNG", "sub/e.png",
    ]
    assert all(p.is_file() and str(p).startswith(str(tree)) for p in found)  # folder / ..., not resolved


def test_not_recursive_lists_the_folder_itself_only(tree: Path) -> None:
    assert _names(image_files(tree, recursive=False), tree) == ["a.JPG", "b.png", "c.JpEg", "d.webp"]


def test_visible_files_keep_non_images_for_callers_that_report_them(tree: Path) -> None:
    assert _names(visible_files(tree, recursive=False), tree) == [
        "README", "a.JPG", "b.png", "c.JpEg", "d.webp", "notes.txt"]


def test_suffixes_are_the_schema_ones() -> None:
    assert IMAGE_SUFFIXES == schema.IMAGE_SUFFIXES == (".png", ".jpg", ".jpeg", ".webp")
    assert [is_image_name(n) for n in ("x.PNG", "x.jpeg", ".x.png", "x.png.tmp", "x.gif", "png")] == [
        True, True, False, False, False, False]


def test_symlinked_folders_are_never_entered_files_are_listed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _png(outside / "far.png")
    root = tmp_path / "root"
    _png(root / "in" / "x.png")
    (root / "to_outside").symlink_to(outside, target_is_directory=True)
    (root / "to_inside").symlink_to(root / "in", target_is_directory=True)  # would list x.png twice
    (root / "loop").symlink_to(root, target_is_directory=True)  # would never end
    (root / "link.png").symlink_to(outside / "far.png")  # a symlinked file: listed
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")  # dangling: left out
    assert _names(image_files(root), root) == ["in/x.png", "link.png"]
    (tmp_path / "root_link").symlink_to(root, target_is_directory=True)  # the folder given may be a link
    assert _names(image_files(tmp_path / "root_link"), tmp_path / "root_link") == ["in/x.png", "link.png"]


def test_missing_folder_and_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'nope'}: folder not found$"):
        image_files(tmp_path / "nope")
    _png(tmp_path / "x.png")
    with pytest.raises(NotADirectoryError, match=r"x.png: not a folder$"):
        image_files(tmp_path / "x.png")
    (tmp_path / "empty").mkdir()
    assert image_files(tmp_path / "empty") == []


def test_an_unreadable_subfolder_is_an_error_not_a_silent_gap(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.scandir

    def scandir(path):
        if Path(path).name == "deeper":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path)

    monkeypatch.setattr(images.os, "scandir", scandir)
    with pytest.raises(PermissionError, match=r"deeper: cannot list the folder \(Permission denied\)"):
        image_files(tree)


# -- the readers that use it: each deliberate change, tested where it shows -------------------------------


def test_paired_folder_ignores_images_in_hidden_folders(tmp_path: Path) -> None:
    """Before: loaders/adapters listed `.cache/x.png` (only the file name was checked for a dot)."""
    from ggt_datasets.loaders import paired_folder

    for side in ("lq", "hq"):
        _png(tmp_path / side / "0001.png")
        _png(tmp_path / side / ".thumbs" / "0002.png")
    ds = paired_folder(lq_dir=tmp_path / "lq", hq_dir=tmp_path / "hq")
    assert ds[schema.ID] == ["0001"]


def test_bench_image_files_ignores_hidden_folders_and_names_the_field(tmp_path: Path) -> None:
    """Before: bench/mfm listed files inside hidden folders too."""
    from ggt_datasets.bench.mfm import image_files as bench_files

    _png(tmp_path / "p" / "a.png")
    _png(tmp_path / "p" / ".ipynb_checkpoints" / "a.png")
    assert _names(bench_files(tmp_path / "p", "fidelity.photos"), tmp_path / "p") == ["a.png"]
    (tmp_path / "q" / ".git").mkdir(parents=True)
    _png(tmp_path / "q" / ".git" / "x.png")
    with pytest.raises(FileNotFoundError, match=r"^fidelity.photos .*q: no images \(.png, .jpg, .jpeg, .webp\)$"):
        bench_files(tmp_path / "q", "fidelity.photos")


def test_eval_image_files_missing_folder_and_duplicates(tmp_path: Path) -> None:
    """Before: a missing --pred folder was NotADirectoryError 'not a folder'; now FileNotFoundError."""
    from ggt_datasets.metrics.cli import image_files as eval_files

    with pytest.raises(FileNotFoundError, match="pred: folder not found"):
        eval_files(tmp_path / "pred")
    _png(tmp_path / "pred" / "sub" / "1.png")
    _png(tmp_path / "pred" / ".b.png.x1.tmp")  # a killed writer's leftover is no prediction
    assert list(eval_files(tmp_path / "pred")) == ["sub/1"]
    _png(tmp_path / "pred" / "sub" / "1.JPG")
    with pytest.raises(ValueError, match="have the same name"):
        eval_files(tmp_path / "pred")


def test_raw_scan_reports_non_images_but_not_temporary_files(tmp_path: Path) -> None:
    from ggt_datasets.raw import scan_raw

    for side in ("lq", "hq"):
        _png(tmp_path / "train" / "rain" / side / "p1.png")
        _png(tmp_path / "train" / "rain" / side / ".p2.png.abc.tmp")  # a write in progress
        _png(tmp_path / "train" / "rain" / side / "p3.png.tmp")
    (tmp_path / "train" / "rain" / "lq" / "notes.txt").write_text("x")
    pairs, problems = scan_raw(tmp_path)
    assert [p.id for p in pairs] == ["p1"]
    assert [(Path(p.path).name, p.reason) for p in problems] == [
        ("notes.txt", "not an image file name (expected .png, .jpg, .jpeg, .webp)")]


def test_synth_inputs_do_not_follow_a_symlinked_folder(tmp_path: Path) -> None:
    from ggt_datasets.synth.inputs import find_lq_files

    _png(tmp_path / "elsewhere" / "far.png")
    lq = tmp_path / "lq"
    _png(lq / "rain" / "a.PNG")
    _png(lq / "rain" / "nested" / "b.jpg")
    (lq / "rain" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert [(c, p.relative_to(lq).as_posix()) for c, p in find_lq_files(lq)] == [
        ("rain", "rain/a.PNG"), ("rain", "rain/nested/b.jpg")]
    flat = tmp_path / "flat"
    _png(flat / "x.webp")
    _png(flat / "deeper" / "y.png")  # a flat folder is read one level deep, as before
    assert [p.name for _, p in find_lq_files(flat, category="haze")] == ["x.webp"]
