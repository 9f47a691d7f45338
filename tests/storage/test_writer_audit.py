"""Source audit: library and benchmark code writes files only through ggt_datasets.atomic.

A write call (`open` for writing, `write_text`, `write_bytes`, `shutil.copy*`, and `torch.save`,
`json.dump`, `Image.save`, `np.save`, `savefig`, `to_parquet`, `cv2.imwrite` ... on anything but
a file object from `atomic_open`, a BytesIO or an anonymous TemporaryFile) is a failure unless it
is listed in ALLOWED with its reason. A new writer must go through atomic.py or be listed here.
Code inside strings (child scripts a benchmark runs) is not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("ggt_datasets", "loaders", "metrics", "training", "cards", "benchmarks")
SKIP = ("ggt_datasets/testing/", "ggt_datasets/atomic.py")
# Calls whose first file-like argument must be a file object (argument index of the target).
TARGET_ARG = {"save": 0, "savefig": 0, "imwrite": 0, "to_parquet": 0, "to_csv": 0, "dump": 1,
              "save_file": 1, "savez": 0, "savez_compressed": 0}
TORCH_NP_SAVE = {"torch", "np", "numpy"}  # torch.save(obj, f) / np.save(f, arr)
ALWAYS = {"write_text", "write_bytes", "copyfile", "copy", "copy2", "copytree", "move"}
SAFE_FACTORIES = {"atomic_open", "BytesIO", "StringIO", "TemporaryFile"}

# (file, kind) -> why it may write without a temporary name and a rename.
ALLOWED = {
    ("training/finetune.py", "open:a"): "train_log.jsonl: one line per step, an append log (rewriting it per step "
                                        "would be quadratic); a resumed run drops rows past its step and a line "
                                        "cut by a kill (_truncate_log / _row_step)",
    ("benchmarks/mutation.py", "open:w"): "mutmut's stdout streamed into a log in a scratch copy, for a person",
    ("benchmarks/mutation.py", "copy2"): "scratch copies of the repository for mutation runs, not artefacts",
    ("benchmarks/mutation.py", "copytree"): "scratch copies of the repository for mutation runs, not artefacts",
    ("benchmarks/build.py", "write_bytes"): "the benchmark's generated inputs in its scratch folder (deleted and "
                                            "rewritten on every run), not artefacts",
}


def _safe_names(tree: ast.AST) -> set[str]:
    """Names bound to a file object that cannot leave a half-written artefact behind."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            call = node.context_expr
            if isinstance(call, ast.Call) and _name(call.func) in SAFE_FACTORIES:
                names.add(node.optional_vars.id)
        value = node.value if isinstance(node, ast.Assign) else None
        if isinstance(value, ast.Call) and _name(value.func) in SAFE_FACTORIES:
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _open_mode(call: ast.Call) -> str:
    is_builtin = isinstance(call.func, ast.Name)
    args = call.args[1:] if is_builtin else call.args
    mode = next((k.value for k in call.keywords if k.arg == "mode"), args[0] if args else None)
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return next((c for c in "wax+" if c in mode.value), "")
    return "" if mode is None else "?"  # a mode computed at run time: listed for a look


def writes(path: Path) -> list[tuple[str, int]]:
    """(kind, line) of every write call in `path` that does not go through a safe file object."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    safe, found = _safe_names(tree), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        owner = node.func.value if isinstance(node.func, ast.Attribute) else None
        owner_name = owner.id if isinstance(owner, ast.Name) else ""
        if name == "open" and not owner_name.endswith("Image") and owner_name not in ("os", "webbrowser"):
            mode = _open_mode(node)
            if mode:
                found.append((f"open:{mode}", node.lineno))
        elif name in ALWAYS and (name not in ("copy", "move") or owner_name == "shutil"):
            found.append((name, node.lineno))
        elif name in TARGET_ARG and owner is not None:
            index = 1 if name == "save" and owner_name == "torch" else TARGET_ARG[name]
            if name == "save" and owner_name in ("np", "numpy"):
                index = 0
            if name == "dump" and owner_name not in ("json", "yaml", "pickle"):
                continue
            target = node.args[index] if len(node.args) > index else None
            if target is None:
                target = next((k.value for k in node.keywords if k.arg in ("f", "fp", "file", "fname", "path")), None)
            if target is None:
                continue  # e.g. cache.save(): a method of ours, audited where it writes
            if not (isinstance(target, ast.Name) and target.id in safe):
                found.append((name, node.lineno))
    return sorted(found, key=lambda kind_line: kind_line[1])


def test_every_writer_is_atomic_or_listed_with_a_reason() -> None:
    unexpected, seen = [], set()
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(SKIP):
                continue
            for kind, line in writes(path):
                seen.add((rel, kind))
                if (rel, kind) not in ALLOWED:
                    unexpected.append(f"{rel}:{line}: {kind}")
    assert unexpected == [], "write through ggt_datasets.atomic (or list it in ALLOWED with a reason):\n" + "\n".join(
        unexpected)
    stale = sorted(set(ALLOWED) - seen)
    assert stale == [], f"ALLOWED entries that no longer match a writer (remove them): {stale}"


def test_the_audit_catches_each_kind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import json, shutil, torch\nfrom pathlib import Path\nfrom PIL import Image\n"
        "def f(p, img, obj):\n"
        "    open(p, 'w').write('x')\n"
        "    Path(p).open('ab')\n"
        "    Path(p).write_text('x')\n"
        "    shutil.copyfile(p, p)\n"
        "    torch.save(obj, p)\n"
        "    img.save(p)\n"
        "    with open(p, 'w') as fh:\n"
        "        json.dump(obj, fh)\n"
    )
    assert [k for k, _ in writes(bad)] == ["open:w", "open:a", "write_text", "copyfile", "save", "save",
                                           "open:w", "dump"]
    good = tmp_path / "good.py"
    good.write_text(
        "import io, json, torch\nfrom ggt_datasets.atomic import atomic_open\n"
        "def f(p, img, obj):\n"
        "    open(p).read()\n"
        "    open(p, 'rb').read()\n"
        "    with atomic_open(p, 'w') as f:\n"
        "        json.dump(obj, f)\n"
        "    with atomic_open(p) as g:\n"
        "        torch.save(obj, g)\n"
        "    buf = io.BytesIO()\n"
        "    img.save(buf, format='PNG')\n"
    )
    assert writes(good) == []
