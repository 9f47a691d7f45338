"""Mutation testing (mutmut) of the modules where a silent bug costs money or data.

NOT part of CI: it takes a while. Each mutant re-runs the tests that reach the mutated function;
on a loaded 2-core machine that is about 1-3 s per mutant for the small modules (more where tests
start servers or subprocesses), so one module takes 5-60 min and `--modules all` (about 6,400
mutants) several hours at `--jobs 1`. Limit it with `--max-mutants N` (N mutants spread evenly over
each module) or `--module-timeout S`.

    python benchmarks/mutation.py --modules atomic,mixing --jobs 1 --verify 1
    python benchmarks/mutation.py --modules all --max-mutants 100
    python benchmarks/mutation.py --list --modules all    # the test files each module runs

It prints one row per module (mutants, killed, survived, no tests, timeout, kill rate, seconds per
mutant) and writes mutation-report/survivors.{json,md}: every mutant the tests did not kill, as
file:line and the change. Kill rate = killed / mutants checked; timeouts and mutants that no
selected test reaches count as not killed.

Why a copy laid out like the wheel: mutmut writes mutated files to `mutants/`, puts that folder
first on sys.path and names each mutant after its file path. Our pyproject maps
`ggt_datasets.loaders` to `loaders/` (also training/, metrics/, cards/). Run in place, (1) the
editable install's finder resolves `ggt_datasets.loaders.*` to the work tree's unmutated loaders/
(mutants/ggt_datasets/ has no loaders/), and (2) mutants of loaders/mixing.py are named
`loaders.mixing.*` while the code runs as `ggt_datasets.loaders.mixing`, so the trampolines never
switch on: mutmut stops with "could not find any test case for any mutant". So the script
snapshots the tracked and untracked (not ignored) files once into --workdir, copies the mapped
folders to where the wheel puts them (ggt_datasets/loaders/, ...), and runs each module in its own
copy of that snapshot; the work tree is never touched (git is only read). After each run it checks
that the module imports from mutants/ under mutmut's name; `--verify N` re-judges N killed and N
surviving mutants with plain pytest on a patched copy. PYTHONPATH points at mutants/, so tests that
start a Python subprocess run the mutant too (mutmut only credits a test with the functions it
calls in-process, though). mutmut skips decorated functions; the few decorators in REAPPLY are
re-applied at the end of the copied file so those functions are mutated too. Afterwards,
`cd WORKDIR/MODULE && mutmut results` / `mutmut show NAME` / `mutmut browse` work on the copy.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ggt_datasets.atomic import atomic_write_text  # noqa: E402


class ModuleRunError(RuntimeError):
    """One module could not be mutation-tested; the others still run."""

# short name -> module file in the repository
MODULES = {
    "runner": "ggt_datasets/synth/runner.py",
    "ledger": "ggt_datasets/synth/ledger.py",
    "build": "ggt_datasets/build.py",
    "raw": "ggt_datasets/raw.py",
    "hub": "ggt_datasets/hub.py",
    "atomic": "ggt_datasets/atomic.py",
    "pairstore": "ggt_datasets/pairstore.py",
    "gates": "ggt_datasets/qc/gates.py",
    "pipeline": "ggt_datasets/qc/pipeline.py",
    "transforms": "loaders/transforms.py",
    "mixing": "loaders/mixing.py",
}

# module -> the test files whose failure a mutant of it should cause (--discover adds every other test
# file that names the module's dotted path). mutmut then runs, per mutant, only those of these tests
# that called the mutated function while it collected stats.
TESTS = {
    "ggt_datasets/synth/runner.py": [
        "tests/synth/test_synth_engine_core.py", "tests/synth/test_synth_engine_fakeapi.py",
        "tests/synth/test_synth_engine_cli.py", "tests/backends/test_backend_batch_jsonl.py",
        "tests/synth/test_synth_promises.py", "tests/synth/test_synth_runner_pins.py",
    ],
    "ggt_datasets/synth/ledger.py": [
        "tests/synth/test_synth_engine_core.py", "tests/synth/test_synth_engine_fakeapi.py",
        "tests/synth/test_synth_engine_cli.py", "tests/backends/test_backend_batch_jsonl.py",
        "tests/qc/test_qc_pipeline.py", "tests/synth/test_synth_promises.py", "tests/storage/test_pairstore.py",
        "tests/synth/test_synth_ledger_pins.py",
    ],
    "ggt_datasets/build.py": [
        "tests/foundation/test_build_and_load.py", "tests/foundation/test_bad_inputs.py",
        "tests/foundation/test_build_storage.py", "tests/foundation/test_build_verify.py",
        "tests/foundation/test_layouts.py", "tests/storage/test_pairstore.py", "tests/foundation/test_build_pins.py",
        "tests/foundation/test_build_speedpaths.py",
    ],
    "ggt_datasets/raw.py": [
        "tests/foundation/test_build_and_load.py", "tests/foundation/test_bad_inputs.py",
        "tests/foundation/test_build_storage.py", "tests/storage/test_jsonl_properties.py",
        "tests/foundation/test_raw_pins.py",
    ],
    "ggt_datasets/hub.py": ["tests/foundation/test_push.py", "tests/foundation/test_push_pins.py"],
    "ggt_datasets/atomic.py": ["tests/storage/test_atomic.py", "tests/storage/test_atomic_pins.py",
                               "tests/storage/test_atomic_append_pins.py",
                               "tests/storage/test_writers_atomic.py"],
    "ggt_datasets/pairstore.py": ["tests/storage/test_pairstore.py", "tests/qc/test_qc_pipeline.py",
                                  "tests/storage/test_pairstore_pins.py"],
    "ggt_datasets/qc/gates.py": [
        "tests/qc/test_qc_gates.py", "tests/qc/test_qc_wb_gain.py", "tests/qc/test_qc_gate_direction.py",
        "tests/qc/test_qc_restore_gate.py", "tests/qc/test_qc_gate_pins.py",
    ],
    "ggt_datasets/qc/pipeline.py": [
        "tests/qc/test_qc_pipeline.py", "tests/qc/test_qc_gates.py", "tests/qc/test_qc_wb_gain.py",
        "tests/qc/test_qc_pipeline_pins.py",
    ],
    "loaders/transforms.py": [
        "tests/loaders/test_loader_transforms.py", "tests/loaders/test_loader_datasets.py",
        "tests/loaders/test_loader_properties.py", "tests/loaders/test_loader_resume.py",
        "tests/loaders/test_loader_pins.py",
    ],
    "loaders/mixing.py": [
        "tests/loaders/test_loader_mixing.py", "tests/loaders/test_loader_properties.py",
        "tests/loaders/test_loader_resume.py", "tests/loaders/test_loader_pins.py",
        "tests/loaders/test_loader_mutants.py",
    ],
}


def package_dirs() -> dict[str, str]:
    """Mapped folders of the wheel layout, e.g. {"loaders": "ggt_datasets/loaders"}, from pyproject."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {src: pkg.replace(".", "/") for pkg, src in setuptools.get("package-dir", {}).items() if src != pkg}


def to_copy_path(path: str) -> str:
    """Where a repository file sits in the wheel-layout copy: loaders/mixing.py -> ggt_datasets/loaders/mixing.py."""
    top, _, rest = path.partition("/")
    mapped = package_dirs().get(top)
    return f"{mapped}/{rest}" if mapped else path


def dotted(copy_path: str) -> str:
    return copy_path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def snapshot(dest: Path) -> None:
    """Copy the work tree's tracked and untracked-not-ignored files to `dest` (read-only git use)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    for rel in sorted({p for p in out.decode().split("\0") if p}):
        src = REPO / rel
        if src.is_file():  # deleted-but-tracked files are skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for src, pkg in package_dirs().items():
        if (dest / src).is_dir() and not (dest / pkg).exists():
            shutil.copytree(dest / src, dest / pkg)


# mutmut leaves decorated functions alone (only @staticmethod/@classmethod are mutated). These
# decorators are moved, in the copy only, to a re-application at the end of the file (the decorator
# line becomes a comment, so line numbers stay), which makes the function mutable and behaves the same.
REAPPLY = {"contextlib.contextmanager", "contextmanager", "functools.cache", "property"}


def undecorate(source: str) -> tuple[str, list[str]]:
    """Source with REAPPLY decorators re-applied at the end; also the functions mutmut still skips."""
    lines, tail, skipped = source.splitlines(), [], []
    tree = ast.parse(source)
    setters = {d.value.id for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for d in n.decorator_list
               if isinstance(d, ast.Attribute) and isinstance(d.value, ast.Name)}
    targets = [(node, node.name) for node in tree.body if isinstance(node, ast.FunctionDef)]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        targets += [(m, f"{cls.name}.{m.name}") for m in cls.body if isinstance(m, ast.FunctionDef)]
    for node, name in targets:
        if not node.decorator_list:
            continue
        decorator = ast.unparse(node.decorator_list[0])
        if len(node.decorator_list) == 1 and decorator in ("staticmethod", "classmethod"):
            continue
        if len(node.decorator_list) == 1 and decorator in REAPPLY and node.name not in setters:
            deco = node.decorator_list[0]
            if deco.lineno == deco.end_lineno:
                indent = lines[deco.lineno - 1][: deco.col_offset - 1]
                lines[deco.lineno - 1] = f"{indent}# @{decorator}: re-applied at the end (benchmarks/mutation.py)"
                tail.append(f"{name} = {decorator}({name})")
                continue
        skipped.append(f"{name} (line {node.lineno})")
    return "\n".join(lines + tail) + "\n", skipped


def tests_for(module: str, copy: Path, discover: bool = False) -> list[str]:
    """TESTS[module], plus (discover=True) any test file in `copy` that names the module's dotted path."""
    listed = [t for t in TESTS[module] if (copy / t).is_file()]
    for t in TESTS[module]:
        if t not in listed:
            print(f"warning: {t} (listed for {module}) is missing; update TESTS in benchmarks/mutation.py")
    if not discover:
        return listed
    name = re.compile(re.escape(dotted(to_copy_path(module))) + r"\b")
    found = [str(p.relative_to(copy)) for p in sorted((copy / "tests").rglob("test_*.py"))
             if name.search(p.read_text(errors="replace"))]
    return sorted(set(listed) | set(found))


def toml_value(value: object) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of them are the same in TOML


def write_config(copy: Path, module: str, tests: list[str], timeout_multiplier: float = 15.0) -> None:
    """The repository's [tool.mutmut] with only this module mutated and only its tests selected.
    timeout_multiplier: mutmut stops a mutant after about that many times its tests' clean duration."""
    text = (copy / "pyproject.toml").read_text()
    conf = dict(tomllib.loads(text).get("tool", {}).get("mutmut", {}))
    conf.update(only_mutate=[to_copy_path(module)], pytest_add_cli_args_test_selection=tests,
                use_git_change_detection=False, timeout_multiplier=timeout_multiplier)
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    body = "".join(f"{k} = {toml_value(v)}\n" for k, v in conf.items())
    atomic_write_text(copy / "pyproject.toml", text.rstrip() + "\n\n[tool.mutmut]\n" + body)


@contextmanager
def cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def mutant_names(copy: Path, module: str) -> list[str]:
    """The names mutmut will give this module's mutants (mutmut's generator, no files written)."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    rel = to_copy_path(module)
    with cwd(copy):  # mutmut reads its config from ./pyproject.toml
        reset_config()
        mutated = mutate_file_contents(rel, (copy / rel).read_text())
    return [get_mutant_name(Path(rel), n).replace("__init__.", "") for n in mutated.mutant_names]


def spread(names: list[str], n: int | None) -> list[str]:
    if not n or n >= len(names):
        return names
    return [names[i * len(names) // n] for i in range(n)]


def check_imports(copy: Path, module: str) -> None:
    """Fail loudly unless the module under test imports from mutants/ under mutmut's name (after a run)."""
    name = dotted(to_copy_path(module))
    code = ("import importlib, sys; sys.path.insert(0, 'mutants'); m = importlib.import_module(sys.argv[1]); "
            "print(m.__file__); print(m.__name__)")
    env = {**os.environ, "MUTANT_UNDER_TEST": ""}
    out = subprocess.run([sys.executable, "-c", code, name], cwd=copy, env=env, capture_output=True, text=True)
    lines = out.stdout.split()
    want = str((copy / "mutants" / to_copy_path(module)).resolve())
    if out.returncode or len(lines) != 2 or str(Path(lines[0]).resolve()) != want or lines[1] != name:
        raise ModuleRunError(f"{name} does not import from {want} (got {out.stdout.strip()} {out.stderr[-500:]})")


def mutmut_command() -> str | None:
    """The mutmut executable: next to this Python (a venv), else on PATH (a `pip install --target` tree)."""
    beside = Path(sys.executable).with_name("mutmut")
    return str(beside) if beside.exists() else shutil.which("mutmut")


def with_path(first: Path) -> str:
    """PYTHONPATH with `first` in front of whatever the caller already had (e.g. a --target install)."""
    return os.pathsep.join([str(first), *filter(None, [os.environ.get("PYTHONPATH")])])


def run_mutmut(copy: Path, names: list[str] | None, jobs: int, timeout: float | None, log: Path) -> tuple[float, int]:
    """Run `mutmut run` in `copy`; (wall seconds, exit code)."""
    mutmut = mutmut_command()
    (copy / "mutants").mkdir(exist_ok=True)  # exists before Python starts, so PYTHONPATH finds it
    env = {**os.environ, "PYTHONPATH": with_path(copy / "mutants")}
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([str(mutmut), "run", "--max-children", str(jobs), *(names or [])], cwd=copy,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            print(f"  stopped after --module-timeout {timeout:.0f} s; unchecked mutants are left out")
        except BaseException:  # Ctrl-C or SIGTERM: mutmut runs in its own session, so stop it too
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    if proc.returncode not in (0, -signal.SIGTERM):
        tail = log.read_text(errors="replace").replace("\r", "\n")[-1500:]
        print(f"  mutmut exited {proc.returncode}; see {log}:\n{tail}")
    return time.monotonic() - start, proc.returncode


def function_starts(source: str) -> dict[str, int]:
    """mutmut key (x_func, xǁClassǁmethod) -> line of that function's `def` in the source."""
    starts = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            starts[f"x_{node.name}"] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    starts[f"xǁ{node.name}ǁ{item.name}"] = item.lineno
    return starts


def describe(copy: Path, module: str, name: str) -> tuple[int | None, str]:
    """(line in the source, "- old / + new") of one mutant: the function and its mutant as `mutmut show`
    reads them, diffed line by line."""
    import libcst as cst
    from mutmut.mutation import diff_apply as da

    rel = to_copy_path(module)
    with cwd(copy):
        pair = da.read_functions_from_index(name, rel)
        if pair is None:
            tree = da.read_mutants_module(rel)
            pair = da.read_original_function(tree, name), da.read_mutant_function(tree, name)
    old, new = (cst.Module([f]).code.strip().splitlines() for f in pair)
    changed = [op for op in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not changed:
        return None, "(no change)"
    _, i1, i2, j1, j2 = changed[0]
    at_def = next((i for i, text in enumerate(old) if text.lstrip().startswith(("def ", "async def "))), 0)
    start = function_starts((copy / rel).read_text()).get(name.rpartition(".")[2].partition("__mutmut_")[0])
    line = None if start is None else start + min(i1, len(old) - 1) - at_def
    change = " / ".join([f"- {t.strip()}" for t in old[i1:i2]] + [f"+ {t.strip()}" for t in new[j1:j2]])
    return line, change


def summarize(copy: Path, module: str, names: list[str]) -> tuple[dict, list[dict]]:
    from mutmut.stats import status_by_exit_code

    meta_path = copy / "mutants" / (to_copy_path(module) + ".meta")
    if not meta_path.is_file():
        raise ModuleRunError(f"mutmut wrote no results for {module}; see {copy / 'mutmut.log'}")
    meta = json.loads(meta_path.read_text())
    codes, durations = meta["exit_code_by_key"], meta["durations_by_key"]
    status = {n: status_by_exit_code[codes.get(n)] for n in names}
    count = {s: sum(v == s for v in status.values()) for s in ("killed", "survived", "no tests", "timeout")}
    checked = sum(v != "not checked" for v in status.values())
    count["other"] = checked - sum(count.values())
    timed = [durations[n] for n in names if n in durations]
    row = {"module": module, "mutants": checked, **count,
           "kill_rate": count["killed"] / checked if checked else None,
           "s_per_mutant": sum(timed) / len(timed) if timed else None}
    survivors = []
    for n in names:
        if status[n] not in ("killed", "not checked"):
            line, change = describe(copy, module, n)
            survivors.append({"module": module, "file": module, "line": line, "status": status[n],
                              "mutant": n, "change": change})
    return row, survivors


def verify(copy: Path, module: str, tests: list[str], n: int) -> list[dict]:
    """Re-judge n killed and n surviving mutants without mutmut: write each into a scratch copy of the
    source (`mutmut apply`) and run the module's tests there with plain pytest.

    Known limit: mutmut 3.8's `apply` swaps a method's mutant into the FIRST function of that name in
    the file (in pairstore.py the `PairStore` Protocol stub), so such a method mutant can read
    DISAGREES here although the tests do kill it; check those by hand."""
    from mutmut.stats import status_by_exit_code

    codes = json.loads((copy / "mutants" / (to_copy_path(module) + ".meta")).read_text())["exit_code_by_key"]
    by_status = {s: [k for k, c in codes.items() if status_by_exit_code[c] == s] for s in ("killed", "survived")}
    scratch = copy.with_name(copy.name + "-verify")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(copy, scratch, symlinks=True)
    rel, checks = to_copy_path(module), []
    env = {k: v for k, v in os.environ.items() if k != "MUTANT_UNDER_TEST"} | {"PYTHONPATH": with_path(scratch)}
    for status, names in by_status.items():
        for name in spread(names, n)[:n]:
            shutil.copy2(copy / rel, scratch / rel)
            subprocess.run([mutmut_command(), "apply", name], cwd=scratch, check=True,
                           capture_output=True)
            changed = (scratch / rel).read_text() != (copy / rel).read_text()
            rc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                cwd=scratch, env=env, capture_output=True).returncode
            agrees = changed and (rc != 0) == (status == "killed")
            checks.append({"mutant": name, "mutmut": status, "pytest_rc": rc, "source_changed": changed,
                           "agrees": agrees})
            print(f"  verify {name}: mutmut {status}, plain pytest rc={rc} -> {'agrees' if agrees else 'DISAGREES'}")
    shutil.copy2(copy / rel, scratch / rel)
    return checks


def write_report(out: Path, rows: list[dict], survivors: list[dict], workdir: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "survivors.json", json.dumps({"summary": rows, "survivors": survivors}, indent=1,
                                                                 ensure_ascii=False))
    md = [f"# Mutation testing: mutants the tests did not kill\n\nSnapshots (for `mutmut show NAME`): {workdir}. "
          "Line numbers are the snapshot's; the work tree may have moved on.\n"]
    for row in rows:
        mine = [s for s in survivors if s["module"] == row["module"]]
        md.append(f"\n## {row['module']}: {row['killed']}/{row['mutants']} killed, {len(mine)} not\n")
        if row.get("error"):
            md.append(f"Not run: {row['error']}\n")
        if row["not_mutated"]:
            md.append(f"mutmut does not mutate these (decorated): {', '.join(row['not_mutated'])}\n")
        md += [f"Checked without mutmut: `{c['mutant']}` ({c['mutmut']}): plain pytest rc={c['pytest_rc']}, "
               + ("agrees" if c["agrees"] else "DISAGREES") for c in row["verify"]]
        md.append("")
        md += [f"- `{s['file']}:{s['line']}` {s['status']}: `{s['change']}` ({s['mutant']})" for s in mine]
    atomic_write_text(out / "survivors.md", "\n".join(md) + "\n")


def print_table(rows: list[dict]) -> None:
    head = ("module", "mutants", "killed", "survived", "no tests", "timeout", "other", "kill rate", "s/mutant",
            "wall s")
    print("  ".join(f"{h:>9}" if i else f"{h:<30}" for i, h in enumerate(head)))
    for r in rows:
        rate = "-" if r["kill_rate"] is None else f"{100 * r['kill_rate']:.1f}%"
        per = "-" if r["s_per_mutant"] is None else f"{r['s_per_mutant']:.1f}"
        cells = [r["mutants"], r["killed"], r["survived"], r["no tests"], r["timeout"], r["other"], rate, per,
                 f"{r['wall_s']:.0f}"]
        print(f"{r['module']:<30}  " + "  ".join(f"{c:>9}" for c in cells))


def run_module(module: str, base: Path, copy: Path, args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """Copy the snapshot `base`, configure and run mutmut for one module; its summary row and survivors."""
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(base, copy)
    target = copy / to_copy_path(module)
    source, skipped = undecorate(target.read_text())
    atomic_write_text(target, source)
    tests = tests_for(module, copy, args.discover)
    if not tests:
        raise ModuleRunError(f"no test files for {module}")
    write_config(copy, module, tests, args.timeout_multiplier)
    names = mutant_names(copy, module)
    chosen = spread(names, args.max_mutants)
    print(f"{module}: {len(chosen)} of {len(names)} mutants; tests: {' '.join(tests)}", flush=True)
    limited = chosen if len(chosen) < len(names) else None
    wall, rc = run_mutmut(copy, limited, args.jobs, args.module_timeout, copy / "mutmut.log")
    check_imports(copy, module)
    row, survivors = summarize(copy, module, chosen)
    if not row["mutants"]:
        raise ModuleRunError(f"mutmut checked no mutant of {module} (exit code {rc}); see {copy / 'mutmut.log'}")
    checks = verify(copy, module, tests, args.verify) if args.verify else []
    return {**row, "wall_s": wall, "not_mutated": skipped, "verify": checks}, survivors


def parse_modules(text: str) -> list[str]:
    if text == "all":
        return list(MODULES.values())
    picked = []
    for item in text.split(","):
        item = item.strip()
        path = MODULES.get(item, item)
        if path not in TESTS:
            raise ValueError(f"unknown module {item!r}; choose from {', '.join(MODULES)} or 'all'")
        picked.append(path)
    return picked


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", default="atomic,mixing", help="comma-separated short names or paths, or 'all'")
    p.add_argument("--max-mutants", type=int, default=None, help="per module, spread evenly over the file")
    p.add_argument("--jobs", type=int, default=1, help="mutants run at once (mutmut --max-children)")
    p.add_argument("--module-timeout", type=float, default=None, help="seconds per module before stopping")
    p.add_argument("--timeout-multiplier", type=float, default=15.0,
                   help="mutmut's per-mutant time limit as a multiple of the clean run (default 15, mutmut's own); "
                        "raise it on a loaded machine, where timeouts (counted as not killed) are load, not hangs")
    p.add_argument("--workdir", type=Path, default=None, help="where the snapshots go (default: a new temp folder)")
    p.add_argument("--out", type=Path, default=REPO / "mutation-report", help="folder for survivors.{json,md}")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="re-judge N killed and N surviving mutants per module with plain pytest on a patched copy")
    p.add_argument("--discover", action="store_true", help="also run every test file naming the module")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--list", action="store_true", help="print the modules and their test files, run nothing")
    args = p.parse_args(argv)
    try:
        modules = parse_modules(args.modules)
    except ValueError as e:
        p.error(str(e))
    if args.list:
        for m in modules:
            extra = sorted(set(tests_for(m, REPO, discover=True)) - set(tests_for(m, REPO)))
            print(f"{m}: {' '.join(tests_for(m, REPO))}" + (f" (--discover adds {' '.join(extra)})" if extra else ""))
        return 0
    if args.jobs < 1 or (args.max_mutants is not None and args.max_mutants < 1):
        p.error("--jobs and --max-mutants must be at least 1")
    if mutmut_command() is None:
        p.error(f"no mutmut next to {sys.executable} or on PATH; pip install mutmut (the dev extra)")
    os.nice(args.nice)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so a kill also stops the mutmut session
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ggt-mutation-"))
    base = workdir / "snapshot"  # one snapshot for every module: the work tree may change during the run
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    snapshot(base)
    rows, survivors = [], []
    for module in modules:
        try:
            row, lost = run_module(module, base, workdir / module.removesuffix(".py").replace("/", "_"), args)
        except ModuleRunError as e:
            print(f"error: {e}")
            row, lost = {"module": module, "mutants": 0, "killed": 0, "survived": 0, "no tests": 0, "timeout": 0,
                         "other": 0, "kill_rate": None, "s_per_mutant": None, "wall_s": 0.0, "not_mutated": [],
                         "verify": [], "error": str(e)}, []
        rows.append(row)
        survivors += lost
        write_report(args.out, rows, survivors, workdir)
    print_table(rows)
    if any(not c["agrees"] for r in rows for c in r["verify"]):
        print("error: some mutmut verdicts disagree with plain pytest; see the report")
        return 1
    print(f"survivors: {args.out / 'survivors.md'}; snapshots: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
