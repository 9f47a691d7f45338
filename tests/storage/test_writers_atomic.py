"""Each converted writer under a failed write or a kill: the previous file survives intact.

Writers: the review / arena decision log (pairstore.append_line -> atomic_append_jsonl), the
weights import (metrics.weights.import_weights -> atomic_copy_file), osediff's LoRA save and the
tiny base-model folder; plus the file modes atomic writes give and a source audit that no library
or benchmark code writes a file any other way.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ggt_datasets import atomic
from ggt_datasets.atomic import WriteError, atomic_append_jsonl, atomic_write_bytes
from ggt_datasets.pairstore import append_line


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def _failing_replace(code: int = errno.ENOSPC):
    def replace(src, dst):
        raise OSError(code, os.strerror(code))

    return replace


# -- review.jsonl / arena.jsonl -------------------------------------------------------------------


def test_append_keeps_order_and_closes_a_cut_line(tmp_path: Path) -> None:
    log = tmp_path / "review.jsonl"
    append_line(log, {"id": "a", "decision": "accept"})
    append_line(log, {"id": "a", "decision": "reject"})
    assert [json.loads(x)["decision"] for x in log.read_text().splitlines()] == ["accept", "reject"]
    log.write_bytes(log.read_bytes() + b'{"id": "b", "deci')  # cut by a kill under the old plain append
    append_line(log, {"id": "c", "decision": "skip"})
    lines = log.read_text().splitlines()
    assert lines[2] == '{"id": "b", "deci' and json.loads(lines[3]) == {"decision": "skip", "id": "c"}
    assert _leftovers(tmp_path) == []


def test_failed_append_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "review.jsonl"
    append_line(log, {"id": "a", "decision": "accept"})
    before = log.read_bytes()
    monkeypatch.setattr(atomic.os, "replace", _failing_replace())
    with pytest.raises(WriteError, match=r"review.jsonl: no space left on the device"):
        append_line(log, {"id": "b", "decision": "reject"})
    assert log.read_bytes() == before and _leftovers(tmp_path) == []


def test_record_review_failure_keeps_earlier_decisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ggt_datasets.pairstore import QCItem, RawPairStore
    from ggt_datasets.raw import read_reviews

    store = RawPairStore(tmp_path)
    a, b = (QCItem(i, "train", "rain", tmp_path / f"{i}.png", None) for i in ("a", "b"))
    store.record_review(a, "accept")
    monkeypatch.setattr(atomic.os, "replace", _failing_replace(errno.EROFS))
    with pytest.raises(WriteError, match="read-only"):
        store.record_review(b, "reject")
    assert read_reviews(tmp_path) == {"a": "accept"} and b.review == ""


def test_kill_between_write_and_rename_keeps_the_previous_file(tmp_path: Path) -> None:
    """SIGKILL after the new bytes are written but before the rename: the old log is intact."""
    log = tmp_path / "review.jsonl"
    for i in range(200):
        append_line(log, {"id": f"p{i:03d}", "decision": "accept", "note": "x" * 200})
    before = log.read_bytes()
    script = textwrap.dedent(
        f"""
        import os, time
        from ggt_datasets import atomic
        from ggt_datasets.pairstore import append_line
        real = os.fsync
        def slow_fsync(fd):
            real(fd)
            print("written, not renamed", flush=True)
            time.sleep(60)
        atomic.os.fsync = slow_fsync
        append_line({str(log)!r}, {{"id": "late", "decision": "reject"}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written, not renamed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_bytes() == before
    assert [p.startswith(".review.jsonl.") for p in _leftovers(tmp_path)] == [True]  # hidden: no reader sees it
    append_line(log, {"id": "after", "decision": "skip"})  # the next write is unaffected
    assert log.read_bytes().startswith(before) and log.read_text().count("\n") == 201


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    """Threads and processes adding lines to one file at once: every line arrives (read-add-rename is locked)."""
    log = tmp_path / "arena.jsonl"
    script = textwrap.dedent(
        f"""
        import sys
        from ggt_datasets.atomic import atomic_append_jsonl
        for i in range(40):
            atomic_append_jsonl({str(log)!r}, {{"who": sys.argv[1], "i": i}})
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"proc{k}"]) for k in range(2)]
    threads = [threading.Thread(target=lambda k=k: [atomic_append_jsonl(log, {"who": f"thread{k}", "i": i})
                                                    for i in range(40)]) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 200
    for who in ("proc0", "proc1", "thread0", "thread1", "thread2"):
        assert [r["i"] for r in rows if r["who"] == who] == list(range(40))  # each writer's order kept


# -- file modes -----------------------------------------------------------------------------------


def test_written_files_get_a_plain_files_mode(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; a written file gets what open() would give: 0666 - umask, or the old mode."""
    new = tmp_path / "new.bin"
    atomic_write_bytes(new, b"x")
    assert new.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    atomic_write_bytes(kept, b"new")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_bytes() == b"new"


# -- the weights import ---------------------------------------------------------------------------


def test_weights_import_failure_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ggt_datasets.metrics import weights

    rel = next(rel for rel, wf in weights.WEIGHT_FILES.items() if wf.sha256)  # a wrong file there is replaced
    src = tmp_path / "src"
    src.mkdir()
    (src / Path(rel).name).write_bytes(b"N" * 3_000_000)
    root = tmp_path / "weights"
    dest = weights.weights_dir(root) / rel
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old weights")
    assert weights.file_status(rel, root) == "bad checksum"

    def half_then_fail(f_in, f_out, length=0):
        f_out.write(f_in.read(1_000_000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.shutil, "copyfileobj", half_then_fail)
    with pytest.raises(WriteError, match="no space left"):
        weights.import_weights(src, root)
    assert dest.read_bytes() == b"old weights" and _leftovers(dest.parent) == []
    monkeypatch.undo()
    assert dest in weights.import_weights(src, root)
    assert dest.read_bytes() == b"N" * 3_000_000


# -- osediff: the LoRA save and the tiny base folder ----------------------------------------------


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from ggt_datasets.testing.tiny_diffusion import write_tiny_base_model

    return write_tiny_base_model(tmp_path_factory.mktemp("tiny-sd") / "base")


def test_tiny_base_folder_appears_whole(tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import StableDiffusionPipeline

    from ggt_datasets.testing.tiny_diffusion import write_tiny_base_model

    assert atomic.is_complete(tiny_base) and (tiny_base / "model_index.json").is_file()
    assert _leftovers(tiny_base.parent) == []

    def fail(self, *args, **kwargs):
        (Path(args[0]) / "model_index.json").write_text("{}")  # part of the folder written...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk fills

    monkeypatch.setattr(StableDiffusionPipeline, "save_pretrained", fail)
    with pytest.raises(OSError, match="No space left"):
        write_tiny_base_model(tmp_path / "base")
    assert sorted(os.listdir(tmp_path)) == []  # neither a half folder nor a temporary one
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        write_tiny_base_model(tmp_path / "used")
    assert (tmp_path / "used" / "mine.txt").read_text() == "keep"


def test_lora_save_failure_keeps_the_previous_weights(tiny_base: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ggt_datasets.training.osediff import UNET_LORA_NAME, OSEDiff, OSEDiffConfig

    model = OSEDiff.from_base(OSEDiffConfig(base_model=str(tiny_base), vae_lora_rank=0))
    out = model.save_lora(tmp_path / "lora")
    before = (out / UNET_LORA_NAME).read_bytes()
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(1.0)
    monkeypatch.setattr(atomic.os, "replace", _failing_replace())
    with pytest.raises(WriteError, match=r"pytorch_lora_weights.safetensors: no space left"):
        model.save_lora(out)
    assert (out / UNET_LORA_NAME).read_bytes() == before and _leftovers(out) == []
    monkeypatch.undo()
    model.save_lora(out)
    assert (out / UNET_LORA_NAME).read_bytes() != before
    again = OSEDiff.from_base(OSEDiffConfig(base_model=str(tiny_base), vae_lora_rank=0))
    again.load_lora(out)  # diffusers' own file layout and metadata, written by our save_function
    for (n, p), (_, q) in zip(model.unet.named_parameters(), again.unet.named_parameters(), strict=True):
        if "lora" in n:
            assert torch.equal(p, q), n
