"""`ggt push`: upload a built dataset folder to the Hugging Face Hub.

Exactly the files of the build are sent (`files_to_upload`): the card, `ggt_config.json` when the
build has one, and the parquet shards its manifest lists; the build report, the manifest and any
stray file stay home. The card is checked before anything is sent. How it is sent (`upload_method`):
huggingface_hub < 2 has `HfApi.upload_large_folder` (resumable, several workers), used for large
folders; huggingface_hub 2.x removed it because its `upload_folder` now does the same through
hf_xet (a default dependency on x86_64 and arm64): files are chunked and uploaded by background
workers, committed in batches, and rerunning the same push after a kill skips what was committed
and re-sends no uploaded chunk. Without hf_xet it is one commit that does not resume. The token comes
from the usual places (`HF_TOKEN`, `hf auth login`) and is never printed. Offline or refused:
one clear line (PushError, a ValueError), never a traceback.

Example:
    >>> from ggt_datasets.hub import push_dataset
    >>> push_dataset("ggt-100k", "my-org/ggt-100k", private=True, dry_run=True)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

BASE_FILES = ("README.md", "ggt_config.json")
LARGE_FOLDER_BYTES = 20 * 10**9  # above this (or LARGE_FOLDER_FILES files) the large-folder upload is used
LARGE_FOLDER_FILES = 1000


class PushError(ValueError):
    """The Hub could not be reached or refused the upload; the message is one line, without the token."""


def files_to_upload(folder: str | os.PathLike) -> list[str]:
    """The relative paths `push_dataset` sends, after checking `folder` is a complete build.

    Example:
        >>> files_to_upload("ggt-100k")[:2]  # doctest: +SKIP
        ['README.md', 'data/haze/test-00000-of-00001.parquet']
    """
    from ggt_datasets.atomic import is_complete
    from ggt_datasets.build import MANIFEST

    folder = Path(folder)
    if not (folder / "README.md").is_file() or not (folder / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{folder}: not a built dataset (needs README.md and {MANIFEST}); run `ggt build SRC --out {folder}` first"
        )
    if not is_complete(folder):
        raise ValueError(f"{folder}: the build is not complete (no completion marker); rerun `ggt build` to finish it")
    try:
        shards = json.loads((folder / MANIFEST).read_text())["shards"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{folder / MANIFEST}: unreadable build manifest; rerun `ggt build`") from None
    listed = sorted(rel for rel, entry in shards.items() if entry.get("rows") and (folder / rel).is_file())
    if not listed:
        raise FileNotFoundError(f"{folder}: the build holds no parquet shard; nothing to push")
    return [f for f in BASE_FILES if (folder / f).is_file()] + listed


def check_card(folder: str | os.PathLike, files: list[str]) -> None:
    """The card must parse, carry a licence and configs, and every config's files must be among those sent."""
    from fnmatch import fnmatch

    from huggingface_hub import DatasetCard

    path = Path(folder) / "README.md"
    try:
        data = DatasetCard.load(path).data.to_dict()
    except Exception as err:  # the card parser raises several kinds on broken YAML
        raise ValueError(f"{path}: the dataset card does not parse ({err}); rerun `ggt build`") from None
    if not data.get("license"):
        raise ValueError(f"{path}: the dataset card names no license; add `license:` to its YAML")
    configs = data.get("configs") or []
    if not configs:
        raise ValueError(f"{path}: the dataset card declares no configs; rerun `ggt build`")
    for config in configs:
        for entry in config.get("data_files") or []:
            if not any(fnmatch(f, entry["path"]) for f in files):
                raise ValueError(
                    f"{path}: config {config.get('config_name')!r} reads {entry['path']}, which matches "
                    "no file being pushed; rerun `ggt build`"
                )


def upload_method(
    api: object, large: bool, create_pr: bool = False, commit_message: str | None = None
) -> tuple[str, str]:
    """(HfApi method push_dataset calls, how that upload survives an interruption), for this huggingface_hub.

    Example:
        >>> from huggingface_hub import HfApi
        >>> upload_method(HfApi(), large=True)[0]
        'upload_folder'
    """
    if large and hasattr(api, "upload_large_folder") and not create_pr and commit_message is None:
        return "upload_large_folder", "resumable large-folder upload with several workers: rerun the push to resume"
    import importlib.util

    from huggingface_hub import hf_api

    # upload_folder streams in batches only where this pipeline exists (huggingface_hub 2.x) and
    # hf_xet is installed: the very check upload_folder makes (not public API)
    pipelined = importlib.util.find_spec("huggingface_hub._upload_pipeline") is not None
    if pipelined and getattr(hf_api, "is_xet_available", lambda: False)():
        return "upload_folder", (
            "streamed upload through hf_xet (background workers, committed in batches): "
            "rerun the push after an interruption to resume; committed files are skipped"
        )
    return "upload_folder", "one commit, not resumable: `pip install hf_xet` for a resumable upload in batches"


def _describe_error(err: BaseException, token: str | None) -> str:
    first_line = str(err).splitlines()[0] if str(err) else ""
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403):
        text = (
            f"the Hub refused the request ({status}): the token is missing, invalid or lacks write access; "
            "run `hf auth login` or set HF_TOKEN to a write token"
        )
    elif status is not None:
        text = f"the Hub answered {status}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    else:
        text = (
            f"cannot reach the Hugging Face Hub ({type(err).__name__}: {first_line}); "
            "check the network (or HF_HUB_OFFLINE) and rerun: finished uploads are not sent twice"
        )
    return text.replace(token, "***") if token else text


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    kinds: list[type[BaseException]] = [
        HfHubHTTPError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        ConnectionError,
        TimeoutError,
    ]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            kinds.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    dry_run: bool = False,
) -> str:
    """Create (if needed) the dataset repo `repo_id` and upload the built `folder`; returns the repo URL
    (or, with dry_run, the listing of what would be sent)."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_token

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--repo-id {repo_id!r}: use the form ORG/NAME (a Hub id needs a namespace)")
    folder = Path(folder)
    files = files_to_upload(folder)
    check_card(folder, files)
    sizes = {f: (folder / f).stat().st_size for f in files}
    total = sum(sizes.values())
    large = total > LARGE_FOLDER_BYTES or len(files) > LARGE_FOLDER_FILES
    method, resume = upload_method(HfApi, large, create_pr, commit_message)
    if dry_run:
        lines = [f"{sizes[f]:>14,}  {f}" for f in files]
        where = f"{repo_id}" + (f" @ {revision}" if revision else "") + (" (as a pull request)" if create_pr else "")
        lines.append(f"{total:>14,}  bytes in {len(files)} files would be sent to {where}; nothing was sent")
        lines.append(f"upload: HfApi.{method}, {resume}")
        print("\n".join(lines))
        return "\n".join(lines)
    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token found: run `hf auth login` or set HF_TOKEN")
    message = commit_message or f"Upload {folder.name} with ggt-datasets ({len(files)} files)"
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision and not create_pr:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        common = {
            "repo_id": repo_id,
            "repo_type": "dataset",
            "folder_path": str(folder),
            "allow_patterns": files,
            "revision": revision,
        }
        print(f"uploading {len(files)} files ({total / 1e6:.1f} MB) with HfApi.{method}: {resume}", file=sys.stderr)
        if method == "upload_large_folder":
            api.upload_large_folder(**common, private=private)
        else:
            api.upload_folder(**common, commit_message=message, create_pr=create_pr)
    except _hub_errors() as err:
        raise PushError(f"push to {repo_id} failed: {_describe_error(err, token)}") from None
    print(f"uploaded {len(files)} files ({total / 1e6:.1f} MB) to {url}")
    return str(url)


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload a built dataset folder to the Hugging Face Hub",
        description="Upload the files of a build (README.md, ggt_config.json, the parquet shards its manifest lists) "
        "to a Hub dataset repo (created if missing). The token comes from HF_TOKEN or `hf auth login` and is never "
        "printed. An interrupted push resumes when rerun (huggingface_hub 2.x with hf_xet, or upload_large_folder "
        "before 2.0); --dry-run lists what would be sent and which upload is used.",
    )
    p.add_argument("folder", help="built dataset folder (from `ggt build`)")
    p.add_argument("--repo-id", required=True, help="Hub dataset id, ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--commit-message", default=None, help="commit message (default names the folder and file count)")
    p.add_argument("--dry-run", action="store_true", help="list the files and sizes that would be sent; send nothing")
    p.set_defaults(
        func=lambda args: (
            push_dataset(
                args.folder,
                args.repo_id,
                args.private,
                commit_message=args.commit_message,
                revision=args.revision,
                create_pr=args.create_pr,
                dry_run=args.dry_run,
            )
            and 0
        )
    )
