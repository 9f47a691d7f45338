"""A `ggt push` killed in the middle resumes when rerun: the real huggingface_hub client (2.x's
streamed `upload_folder`) against a Hub on 127.0.0.1; committed files are not sent again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from ggt_datasets.hub import files_to_upload
from ggt_datasets.testing.fake_hub import FakeHub, git_blob_id

TOKEN = "hf_test_secret_token_0123456789"
# Three files per commit (the client starts at 256), so that a 13-file build takes five commits and
# a kill can land between them. A test-only knob of huggingface_hub's pipeline, not of ours.
PUSH = """
import sys
import huggingface_hub._upload_pipeline as pipeline
pipeline.COMMIT_SIZE_SCALE = [3] * len(pipeline.COMMIT_SIZE_SCALE)
from ggt_datasets.cli import main
sys.exit(main(["push", sys.argv[1], "--repo-id", "me/big"]))
"""


@pytest.fixture
def built(built_sample, tmp_path):
    out = tmp_path / "ggt-100k"
    shutil.copytree(built_sample, out)
    return out


def _push(folder, hub: FakeHub) -> subprocess.Popen:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.Popen(
        [sys.executable, "-c", PUSH, str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_killed_push_resumes_and_sends_no_committed_file_twice(built):
    expected = files_to_upload(built)
    assert len(expected) == 13
    with FakeHub(TOKEN, hold_commit=2) as hub:
        first = _push(built, hub)
        while not hub.held.wait(0.1) and first.poll() is None:
            pass
        assert hub.held.is_set(), first.communicate(timeout=5)
        first.send_signal(signal.SIGKILL)  # killed while its second commit is in flight
        first.wait(30)
        assert first.returncode == -signal.SIGKILL
        before = [paths for _, paths in hub.commits]
        assert len(before) == 1 and len(before[0]) == 3  # one commit landed, the held one did not

        hub.hold_commit = None
        second = _push(built, hub)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err[-3000:]
        assert "rerun the push after an interruption to resume" in err  # said before sending
        after = [paths for _, paths in hub.commits[1:]]
        resent = {p for paths in after for p in paths}
        assert not resent & set(before[0])  # what the killed run committed is not sent again
        assert sorted(set(before[0]) | resent) == sorted(expected)
        stored = hub.files["me/big"]
        assert all(git_blob_id(stored[f]) == git_blob_id((built / f).read_bytes()) for f in expected)
        assert TOKEN not in out + err
