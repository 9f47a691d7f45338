"""One folder for every file the learned metrics load, so they work offline.

The folder is `GGT_WEIGHTS_DIR` (default: `$XDG_CACHE_HOME/ggt_datasets/weights`, i.e.
`~/.cache/ggt_datasets/weights`). Its layout mirrors torch.hub's, which is how pyiqa, torchvision
and CLIP find their files once torch.hub points at it:

    pyiqa/LPIPS_v0.1_alex-df73285e.pth          pyiqa checkpoints (its Hub repo)
    checkpoints/alexnet-owt-7be5be79.pth        torchvision backbones
    clip/RN50.pt                                OpenAI CLIP models (SHA-256 checked by the loader)
    timm/resnet50.a1_in1k.safetensors           timm backbones, as plain files

Before a metric is created every file it needs is checked; a missing one raises
MissingWeightsError naming the metric, the file and the commands that fix it, so nothing ever
waits on a network timeout. `ggt weights list | download | import` manage the folder.

Example:
    >>> from ggt_datasets.metrics.weights import missing_files
    >>> missing_files("psnr")
    []
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ggt_datasets.atomic import atomic_copy_file

__all__ = [
    "WEIGHT_FILES",
    "DownloadError",
    "MissingWeightsError",
    "download_weights",
    "file_status",
    "import_weights",
    "missing_files",
    "needed_files",
    "require_weights",
    "use_weights_dir",
    "weights_dir",
]

ENV_VAR = "GGT_WEIGHTS_DIR"
_PYIQA = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
_CLIP = "https://openaipublic.azureedge.net/clip/models/"


@dataclass(frozen=True)
class WeightFile:
    """A file a metric loads: where it lives in the folder and where it comes from."""

    path: str  # relative to the weights folder
    url: str
    sha256: str = ""  # checked when given (the CLIP loader re-downloads on a mismatch)

    @property
    def name(self) -> str:
        return Path(self.path).name


def _pyiqa(name: str) -> WeightFile:
    return WeightFile(f"pyiqa/{name}", _PYIQA + name)


def _clip(digest: str, name: str) -> WeightFile:
    return WeightFile(f"clip/{name}", f"{_CLIP}{digest}/{name}", sha256=digest)


# Every file a registered metric can need, by its path in the folder. Metrics list these paths
# in their MetricSpec (registry.py).
WEIGHT_FILES: dict[str, WeightFile] = {
    f.path: f
    for f in (
        _pyiqa("LPIPS_v0.1_alex-df73285e.pth"),
        _pyiqa("LPIPS_v0.1_vgg-a78928a0.pth"),
        _pyiqa("DISTS_weights-f5e65c96.pth"),
        _pyiqa("niqe_modelparameters.mat"),
        _pyiqa("musiq_koniq_ckpt-e95806b9.pth"),
        _pyiqa("ckpt_koniq10k.pt"),
        _pyiqa("MANIQA_PIPAL-ae6d356b.pth"),
        _pyiqa("cfanet_nr_koniq_res50-9a73138b.pth"),
        _pyiqa("afine.pth"),
        WeightFile(
            "checkpoints/alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        ),
        WeightFile(
            "checkpoints/vgg16-397923af.pth",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
        ),
        _clip("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
        _clip("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
        WeightFile(
            "timm/resnet50.a1_in1k.safetensors",
            "https://huggingface.co/timm/resnet50.a1_in1k/resolve/main/model.safetensors",
        ),
    )
}

_FIX = (
    "On a machine with network run `ggt weights download {metric}`, or copy the files in with "
    "`ggt weights import DIR`; `ggt weights list` shows what is present (folder: {root}; "
    f"set {ENV_VAR} to use another)."
)


class MissingWeightsError(FileNotFoundError):
    """A metric's weights are not in the weights folder; the message says what to run."""


def weights_dir(path: str | os.PathLike | None = None) -> Path:
    """The weights folder: `path`, else $GGT_WEIGHTS_DIR, else the user cache."""
    if path:
        return Path(path).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ggt_datasets" / "weights"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_status(rel: str, root: str | os.PathLike | None = None) -> str:
    """'ok', 'missing' or 'bad checksum' for one file of the folder."""
    path = weights_dir(root) / rel
    if not path.is_file() or path.stat().st_size == 0:
        return "missing"
    wf = WEIGHT_FILES.get(rel)
    if wf and wf.sha256 and _sha256(path) != wf.sha256:
        return "bad checksum"
    return "ok"


def needed_files(metric: str) -> tuple[str, ...]:
    from ggt_datasets.metrics.registry import get_spec

    return get_spec(metric).weights


def missing_files(metric: str, root: str | os.PathLike | None = None) -> list[str]:
    """The files `metric` needs that are not usable in the folder (relative paths)."""
    return [rel for rel in needed_files(metric) if file_status(rel, root) != "ok"]


def require_weights(metric: str, root: str | os.PathLike | None = None) -> Path:
    """Return the folder, or raise MissingWeightsError naming the metric, files and fixes."""
    folder = weights_dir(root)
    missing = missing_files(metric, folder)
    if missing:
        files = ", ".join(f"{rel} ({file_status(rel, folder)})" for rel in missing)
        raise MissingWeightsError(
            f"metric {metric!r} needs weights not found in {folder}: {files}. "
            + _FIX.format(metric=metric, root=folder)
        )
    return folder


class DownloadError(ConnectionError):
    """A weight file that could not be fetched; the message names the file, the URL and the fix.

    `fetched` lists the files that did arrive before it (they are kept).
    """

    def __init__(self, message: str, fetched: list[Path]):
        super().__init__(message)
        self.fetched = fetched


def download_weights(
    metrics: list[str], root: str | os.PathLike | None = None, progress: bool = True
) -> list[Path]:
    """Fetch the files of `metrics` that are missing (needs network). Returns the new files.

    Raises DownloadError on any network failure (offline, refused, HTTP error, hash mismatch),
    keeping the files already fetched; a partial download never lands under its final name.
    """
    import http.client
    import urllib.error

    import torch.hub

    folder = weights_dir(root)
    fetched: list[Path] = []
    for rel in sorted({rel for m in metrics for rel in needed_files(m)}):
        if file_status(rel, folder) == "ok":
            continue
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        wf = WEIGHT_FILES[rel]
        try:
            torch.hub.download_url_to_file(wf.url, str(dest), hash_prefix=wf.sha256 or None, progress=progress)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, RuntimeError) as err:
            if isinstance(err, urllib.error.HTTPError):
                why = f"HTTP {err.code} {err.reason}"
            else:
                why = f"{type(err).__name__}: {getattr(err, 'reason', None) or err}"
            raise DownloadError(
                f"cannot download {rel} from {wf.url}: {why}; check the network, or copy "
                f"the file into {folder} with `ggt weights import DIR`", fetched) from None
        fetched.append(dest)
    return fetched


def import_weights(source: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Copy known weight files from folder `source` into the weights folder.

    A file is found at its relative path under `source` (e.g. a torch hub folder such as
    ~/.cache/torch/hub), or anywhere below `source` by its file name.
    """
    src = Path(source).expanduser()
    if not src.is_dir():
        raise NotADirectoryError(f"{src}: not a folder; give the folder holding the weight files")
    folder = weights_dir(root)
    by_name: dict[str, Path] = {}
    for p in src.rglob("*"):
        if p.is_file():
            by_name.setdefault(p.name, p)
    copied = []
    for rel in WEIGHT_FILES:
        found = src / rel if (src / rel).is_file() else by_name.get(Path(rel).name)
        if found is None or file_status(rel, folder) == "ok":
            continue
        dest = folder / rel
        atomic_copy_file(found, dest)  # a kill mid-copy never leaves a cut weight file under its name
        copied.append(dest)
    return copied


@contextmanager
def use_weights_dir(root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Point torch.hub (torchvision, CLIP) and pyiqa at the weights folder, then restore them."""
    import torch.hub

    folder = weights_dir(root)
    old_hub = torch.hub._hub_dir  # restore exactly, including "not set"
    torch.hub.set_dir(str(folder))
    try:
        import pyiqa.utils.download_util as pyiqa_download
    except ImportError:
        pyiqa_download = None
    old_cache = getattr(pyiqa_download, "DEFAULT_CACHE_DIR", None)
    if pyiqa_download is not None:
        pyiqa_download.DEFAULT_CACHE_DIR = str(folder / "pyiqa")
    try:
        yield folder
    finally:
        torch.hub._hub_dir = old_hub
        if pyiqa_download is not None:
            pyiqa_download.DEFAULT_CACHE_DIR = old_cache
