"""One helper for optional dependencies: import a module or say which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """Raised when an optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming the `ggt-datasets[extra]` to install.

    Example:
        >>> torch = require("torch", "train")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{module!r} is needed for this and is not installed: "
            f"pip install 'ggt-datasets[{extra}]'"
        ) from err
