"""`ggt push` sends exactly the files of the build, checks the card first, fails in one line, never shows the token."""

from __future__ import annotations

import json
import re
import shutil

import httpx2
import pytest
import requests
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ggt_datasets.build import build_dataset
from ggt_datasets.cli import main
from ggt_datasets.hub import files_to_upload, push_dataset

TOKEN = "hf_test_secret_token_0123456789"


@pytest.fixture
def hub_calls(monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw, self.token))
        return f"https://huggingface.co/datasets/{repo_id}"

    def create_branch(self, repo_id, **kw):
        calls.append(("create_branch", repo_id, kw, self.token))

    def upload_folder(self, **kw):
        calls.append(("upload_folder", kw["repo_id"], kw, self.token))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return calls


@pytest.fixture
def built(built_sample, tmp_path):
    """A writable copy of the built sample."""
    out = tmp_path / "ggt-100k"
    shutil.copytree(built_sample, out)
    return out


EXPECTED = ["README.md"] + sorted(
    f"data/{c}/{s}-00000-of-00001.parquet"
    for c in ("mixed", "rain", "haze", "snow", "low_light", "old_photo")
    for s in ("train", "test")
)


def test_push_sends_exactly_the_listed_files(built, hub_calls, capsys):
    (built / "notes.txt").write_text("stray")
    (built / "data" / "rain" / "stray-00000-of-00001.parquet").write_bytes(b"not ours")
    (built / "data" / "rain" / "sub").mkdir()
    (built / "data" / "rain" / "sub" / "x.parquet").write_bytes(b"not ours")
    assert main(["push", str(built), "--repo-id", "me/ggt-100k", "--private"]) == 0
    (create, repo, kw, tok), (upload, repo2, ukw, tok2) = hub_calls
    assert (create, repo, kw, tok) == (
        "create_repo",
        "me/ggt-100k",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
        TOKEN,
    )
    assert ukw == {
        "repo_id": "me/ggt-100k",
        "repo_type": "dataset",
        "folder_path": str(built),
        "allow_patterns": EXPECTED,
        "commit_message": "Upload ggt-100k with ggt-datasets (13 files)",
        "revision": None,
        "create_pr": False,
    }
    assert files_to_upload(built) == EXPECTED
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and "13 files" in out.out


def test_push_options_and_ggt_config(built, hub_calls):
    (built / "ggt_config.json").write_text(json.dumps({"generator": "classical"}))
    assert main(["push", str(built), "--repo-id", "me/x", "--revision", "v2", "--commit-message", "hello"]) == 0
    assert [c[0] for c in hub_calls] == ["create_repo", "create_branch", "upload_folder"]
    assert hub_calls[1][2] == {"branch": "v2", "repo_type": "dataset", "exist_ok": True}
    ukw = hub_calls[2][2]
    assert ukw["allow_patterns"] == ["README.md", "ggt_config.json", *EXPECTED[1:]]
    assert (ukw["revision"], ukw["commit_message"], ukw["create_pr"]) == ("v2", "hello", False)
    hub_calls.clear()
    assert main(["push", str(built), "--repo-id", "me/x", "--create-pr"]) == 0
    assert [c[0] for c in hub_calls] == ["create_repo", "upload_folder"] and hub_calls[1][2]["create_pr"] is True


def test_dry_run_lists_sizes_and_sends_nothing(built, hub_calls, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    assert main(["push", str(built), "--repo-id", "me/x", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert hub_calls == []
    size = (built / "README.md").stat().st_size
    assert f"{size:>14,}  README.md" in out and "13 files would be sent to me/x" in out


def _response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))


@pytest.mark.parametrize("with_token", [True, False])
@pytest.mark.parametrize(
    "error, expect",
    [
        (httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"), "cannot reach the Hugging Face Hub"),
        (requests.exceptions.ConnectionError("Max retries exceeded"), "cannot reach the Hugging Face Hub"),
        (HfHubHTTPError("401 Client Error: Unauthorized", response=_response(401)), "refused the request (401)"),
        (HfHubHTTPError("500 Server Error", response=_response(500)), "answered 500"),
    ],
)
def test_offline_or_unauthorised_is_one_line_exit_2(built, hub_calls, monkeypatch, capsys, error, expect, with_token):
    def fail(self, repo_id, **kw):
        raise error

    monkeypatch.setattr(HfApi, "create_repo", fail)
    if not with_token:
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr("huggingface_hub.utils.get_token", lambda: "hf_cached_login_token_abcdef")
    assert main(["push", str(built), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1 and "Traceback" not in err
    assert TOKEN not in err and "hf_cached_login_token" not in err
    assert not [c for c in hub_calls if c[0] == "upload_folder"]


def test_push_refuses_incomplete_builds_and_bad_cards(built, hub_calls, tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match="ORG/NAME"):
        push_dataset(built, "no-namespace")
    with pytest.raises(FileNotFoundError, match="not a built dataset"):
        push_dataset(tmp_path, "me/x")
    card = (built / "README.md").read_text()
    (built / "README.md").write_text(re.sub(r"(?m)^license: .*\n", "", card))
    with pytest.raises(ValueError, match="no license"):
        push_dataset(built, "me/x")
    (built / "README.md").write_text(card.replace("data/rain/train-*.parquet", "data/rain/valid-*.parquet"))
    with pytest.raises(ValueError, match="matches no file"):
        push_dataset(built, "me/x")
    (built / "README.md").write_text(card)
    (built / ".complete").unlink()
    with pytest.raises(ValueError, match="not complete"):
        push_dataset(built, "me/x")
    (built / ".complete").write_text("{}")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["push", str(built), "--repo-id", "me/x"]) == 2
    assert "hf auth login" in capsys.readouterr().err
    assert hub_calls == []


def test_push_of_a_layout_build(tmp_path, hub_calls):
    from ggt_datasets.testing.release_trees import TREES

    tree = TREES["flat_suffixes"](tmp_path)
    build_dataset(tree.src, tmp_path / "flat-out", layout="auto", category="haze", progress=False)
    push_dataset(tmp_path / "flat-out", "me/flat")
    assert hub_calls[-1][2]["allow_patterns"] == ["README.md", "data/haze/train-00000-of-00001.parquet"]


def test_large_folders_use_the_large_folder_upload_when_available(built, hub_calls, monkeypatch):
    from ggt_datasets import hub

    def upload_large_folder(self, **kw):
        hub_calls.append(("upload_large_folder", kw["repo_id"], kw, self.token))

    monkeypatch.setattr(HfApi, "upload_large_folder", upload_large_folder, raising=False)
    monkeypatch.setattr(hub, "LARGE_FOLDER_FILES", 5)
    push_dataset(built, "me/big")
    name, repo, kw, _ = hub_calls[-1]
    assert (name, repo) == ("upload_large_folder", "me/big")
    assert kw == {"repo_id": "me/big", "repo_type": "dataset", "folder_path": str(built), "allow_patterns": EXPECTED,
                  "revision": None, "private": False}
    push_dataset(built, "me/big", create_pr=True)  # pull requests need one commit: upload_folder
    assert hub_calls[-1][0] == "upload_folder"


@pytest.mark.parametrize("xet", [True, False])
def test_the_upload_used_and_how_it_resumes_are_said_before_sending(built, hub_calls, monkeypatch, capsys, xet):
    """huggingface_hub 2.x has no upload_large_folder: its upload_folder resumes through hf_xet, and
    without hf_xet the user is told the upload will not resume (and how to fix it)."""
    from huggingface_hub import hf_api

    monkeypatch.delattr(HfApi, "upload_large_folder", raising=False)
    monkeypatch.setattr(hf_api, "is_xet_available", lambda: xet)
    assert main(["push", str(built), "--repo-id", "me/x", "--dry-run"]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    expected = "rerun the push after an interruption to resume" if xet else "not resumable: `pip install hf_xet`"
    assert said.startswith("upload: HfApi.upload_folder, ") and expected in said
    assert hub_calls == []
    assert main(["push", str(built), "--repo-id", "me/x"]) == 0
    assert expected in capsys.readouterr().err and hub_calls[-1][0] == "upload_folder"


def test_the_installed_hub_uploads_large_folders_resumably():
    """The huggingface_hub this project installs must offer a resumable upload for a 383 GB push:
    upload_large_folder (< 2.0) or upload_folder's hf_xet pipeline (2.x)."""
    from ggt_datasets.hub import upload_method

    method, how = upload_method(HfApi(), large=True)
    assert "resume" in how and "not resumable" not in how, (method, how)
