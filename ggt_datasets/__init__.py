"""ggt-datasets: Generative Ground Truth paired data for real-world image restoration.

Example:
    >>> import datasets
    >>> ds = datasets.load_dataset("ggt-100k", "rain", split="train")  # doctest: +SKIP
"""

from ggt_datasets import schema
from ggt_datasets.images import load_rgb, open_image, to_rgb
from ggt_datasets.raw import RawPair, scan_raw

__version__ = "0.1.0"

__all__ = ["schema", "load_rgb", "open_image", "to_rgb", "RawPair", "scan_raw", "__version__"]
