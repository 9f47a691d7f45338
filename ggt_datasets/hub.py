"""`ggt push`: upload a built dataset folder to the Hugging Face Hub.

Only the card and the parquet shards are sent (`UPLOAD_PATTERNS`); the build report and the
build manifest name local paths and stay home. The token comes from the usual places
(`HF_TOKEN`, `hf auth login`) and is never printed.

Example:
    >>> from ggt_datasets.hub import push_dataset
    >>> push_dataset("ggt-100k", "my-org/ggt-100k", private=True)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

UPLOAD_PATTERNS = ["README.md", "data/**/*.parquet"]


def files_to_upload(folder: str | os.PathLike) -> list[str]:
    """The relative paths `push_dataset` sends, after checking `folder` is a built dataset."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    if not (folder / "README.md").is_file() or not any((folder / "data").rglob("*.parquet")):
        raise FileNotFoundError(f"{folder}: not a built dataset (needs README.md and data/**/*.parquet); run `ggt build RAW --out {folder}` first")
    relative = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(relative, allow_patterns=UPLOAD_PATTERNS))


def push_dataset(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None,
                 commit_message: str = "Upload GGT dataset with ggt-datasets") -> str:
    """Create (if needed) the dataset repo `repo_id` and upload the built `folder`; returns the repo URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_token

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--repo-id {repo_id!r}: use the form ORG/NAME (a Hub id needs a namespace)")
    files = files_to_upload(folder)
    if not (token or get_token()):
        raise ValueError("no Hugging Face token found: run `hf auth login` or set HF_TOKEN")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                      allow_patterns=UPLOAD_PATTERNS, commit_message=commit_message)
    print(f"uploaded {len(files)} files to {url}")
    return str(url)


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push", help="upload a built dataset folder to the Hugging Face Hub",
        description="Upload DIR/README.md and DIR/data/**/*.parquet to a Hub dataset repo (created if "
        "missing). The token comes from HF_TOKEN or `hf auth login` and is never printed.")
    p.add_argument("folder", help="built dataset folder (from `ggt build`)")
    p.add_argument("--repo-id", required=True, help="Hub dataset id, ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.set_defaults(func=lambda args: push_dataset(args.folder, args.repo_id, args.private) and 0)
