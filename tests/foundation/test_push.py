"""`ggt push` sends the card and the shards, nothing else, and never shows the token."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

from ggt_datasets.cli import main
from ggt_datasets.hub import files_to_upload, push_dataset

TOKEN = "hf_test_secret_token_0123456789"


@pytest.fixture
def hub_calls(monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw, self.token))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kw):
        calls.append(("upload_folder", kw["repo_id"], kw, self.token))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return calls


def test_push_sends_card_and_shards(built_sample, hub_calls, capsys, tmp_path):
    (built_sample.parent / "stray.txt").write_text("not part of the dataset")
    assert main(["push", str(built_sample), "--repo-id", "me/ggt-100k", "--private"]) == 0
    (create, repo, kw, _), (upload, repo2, ukw, _) = hub_calls
    assert (create, repo, kw["repo_type"], kw["private"]) == ("create_repo", "me/ggt-100k", "dataset", True)
    assert (upload, repo2, ukw["repo_type"], ukw["folder_path"]) == ("upload_folder", "me/ggt-100k", "dataset", str(built_sample))
    sent = files_to_upload(built_sample)
    assert sent[0] == "README.md" and len(sent) == 13
    assert all(f == "README.md" or (f.startswith("data/") and f.endswith(".parquet")) for f in sent)
    assert "build_report.json" not in sent and ".ggt_build.json" not in sent
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert "13 files" in out.out


def test_push_errors(built_sample, hub_calls, tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match="ORG/NAME"):
        push_dataset(built_sample, "no-namespace")
    with pytest.raises(FileNotFoundError, match="not a built dataset"):
        push_dataset(tmp_path, "me/x")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["push", str(built_sample), "--repo-id", "me/x"]) == 2
    assert "hf auth login" in capsys.readouterr().err
    assert hub_calls == []
