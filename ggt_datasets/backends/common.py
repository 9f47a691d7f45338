"""Small helpers every API backend shares: keys, redaction, mime sniffing, checking image bytes."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from ggt_datasets.backends.base import TransientBackendError
from ggt_datasets.images import ImageError, check_png_chunks, exif_orientation, open_image

# Sent when no key is set and the endpoint is this machine (a local test server needs none).
LOOPBACK_KEY = "ggt-loopback-no-key"


def is_loopback_url(url: str | None) -> bool:
    """True for http(s) URLs on 127.0.0.0/8, ::1 or localhost."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(explicit: str | None, env_names: Iterable[str], backend: str, base_url: str | None = None) -> str:
    """`explicit` if given, else the first set environment variable, else (only for a loopback
    `base_url`) a dummy key; ValueError naming the variables otherwise."""
    if explicit:
        return explicit
    names = list(env_names)
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    if is_loopback_url(base_url):
        return LOOPBACK_KEY
    raise ValueError(
        f"no API key for the {backend} backend: set {' or '.join(names)} in the environment "
        f"(or pass api_key=...)"
    )


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret (and anything shaped like an API key) replaced by '***'."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    # Provider error messages sometimes echo part of a key ("sk-abc...xyz", "AIza...").
    text = re.sub(r"\b(sk-[A-Za-z0-9_\-*.]{6,}|AIza[0-9A-Za-z_\-]{20,})", "***", text)
    return text


def sniff_mime(data: bytes) -> str:
    """The mime type of encoded image bytes from their magic number ('image/png' by default)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def checked_image_size(data: bytes, what: str) -> tuple[int, int]:
    """Check that answer bytes are a whole image and return its (width, height) as viewed.

    PNG is checked without inflating the pixels (every chunk's CRC and the IEND marker, as
    `images.inspect_image` does), which costs a fraction of a decode; other formats are decoded.
    A truncated or non-image answer is a fault of this one response: TransientBackendError.
    """
    if not data:
        raise TransientBackendError(f"{what}: empty image bytes in the answer")
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            check_png_chunks(data, what)
        else:
            open_image(data, name=what)
        return image_dims(data, what)
    except (ImageError, OSError, SyntaxError, ValueError) as err:
        raise TransientBackendError(f"undecodable image in the answer: {err}") from None


def image_dims(data: bytes, what: str = "<image bytes>") -> tuple[int, int]:
    """(width, height) of an input image as a viewer shows it (EXIF rotation applied), header only.

    Raises ImageError (a ValueError) naming `what` if the bytes are not an image.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"{what}: empty image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            orientation = exif_orientation(img)
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{what}: not an image Pillow can read ({err})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
