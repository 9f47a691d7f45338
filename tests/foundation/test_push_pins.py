"""Pins on `ggt push` that mutation testing found loose (issue 15).

The branch is made in the repo being pushed to, what a dry run says it would do, and the one-line
errors naming what is wrong (manifest, shards, card config, the Hub's own answer).
"""

from __future__ import annotations

import json
import shutil

import httpx2
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ggt_datasets.build import MANIFEST
from ggt_datasets.cli import main
from ggt_datasets.hub import PushError, push_dataset

TOKEN = "hf_test_secret_token_0123456789"


@pytest.fixture
def hub_calls(monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/datasets/{repo_id}"

    def create_branch(self, repo_id, **kw):
        calls.append(("create_branch", repo_id, kw))

    def upload_folder(self, **kw):
        calls.append(("upload_folder", kw["repo_id"], kw))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return calls


@pytest.fixture
def built(built_sample, tmp_path):
    out = tmp_path / "ggt-100k"
    shutil.copytree(built_sample, out)
    return out


def test_the_branch_is_created_in_the_repo_pushed_to(built, hub_calls):
    assert main(["push", str(built), "--repo-id", "me/x", "--revision", "v2"]) == 0
    assert hub_calls[1] == ("create_branch", "me/x", {"branch": "v2", "repo_type": "dataset", "exist_ok": True})
    assert hub_calls[2][1] == "me/x" and hub_calls[2][2]["revision"] == "v2"


def test_dry_run_names_the_target_branch_and_pull_request(built, hub_calls, capsys):
    assert main(["push", str(built), "--repo-id", "me/x", "--revision", "v2", "--create-pr", "--dry-run"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-2]
    assert summary.endswith("bytes in 13 files would be sent to me/x @ v2 (as a pull request); nothing was sent")
    assert hub_calls == []


def test_an_unreadable_manifest_or_no_shard_is_said_in_one_line(built, hub_calls):
    manifest = built / MANIFEST
    good = manifest.read_text()
    manifest.write_text("{not json")
    with pytest.raises(ValueError, match=f"{MANIFEST}: unreadable build manifest; rerun `ggt build`"):
        push_dataset(built, "me/x")
    manifest.write_text(json.dumps({**json.loads(good), "shards": {}}))
    with pytest.raises(FileNotFoundError, match="the build holds no parquet shard; nothing to push"):
        push_dataset(built, "me/x")
    assert hub_calls == []


def test_a_card_config_reading_no_sent_file_is_named(built, hub_calls):
    card = (built / "README.md").read_text()
    (built / "README.md").write_text(card.replace("data/rain/train-*.parquet", "data/rain/valid-*.parquet"))
    with pytest.raises(ValueError, match=r"config 'rain' reads data/rain/valid-\*\.parquet, which matches no file"):
        push_dataset(built, "me/x")


def test_a_hub_error_status_carries_the_hubs_first_line(built, hub_calls, monkeypatch):
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")

    def fail(self, repo_id, **kw):
        raise HfHubHTTPError("500 Server Error: boom\nmore detail", response=httpx2.Response(500, request=request))

    monkeypatch.setattr(HfApi, "create_repo", fail)
    with pytest.raises(PushError) as err:
        push_dataset(built, "me/x")
    assert str(err.value) == "push to me/x failed: the Hub answered 500: 500 Server Error: boom"
