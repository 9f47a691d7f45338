"""Reading images the same way everywhere: EXIF orientation applied, odd modes made RGB.

The policy (documented in the README, applied by build, metrics, loaders and synthesis alike):

- EXIF orientation is applied, so pixels are what a photo viewer shows.
- L, P, CMYK, YCbCr, LAB, HSV -> RGB by Pillow's conversion (P with transparency via RGBA).
- LA and RGBA: the alpha channel is dropped, the colour kept as stored (as cv2.imread and
  BasicSR do), so metrics stay comparable with BasicSR's.
- 16-bit and 32-bit (I;16*, I, F): scaled to 8 bits by the value range of the type
  (I;16: v / 257), never clipped.

Example:
    >>> from ggt_datasets.images import load_rgb
    >>> arr = load_rgb("photo.jpg")  # doctest: +SKIP
    >>> arr.shape, arr.dtype          # doctest: +SKIP
    ((768, 1024, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ggt_datasets import schema

try:  # zlib's streaming API and crc32, from Intel ISA-L: about 2x faster to inflate, 20x to checksum
    from isal import isal_zlib as fast_zlib
except ImportError:  # a platform without python-isal's wheels
    fast_zlib = zlib

# One pixel limit for every reader (build, QC, eval, loaders, review, synthesis inputs): the header's
# declared size is checked before any decode. 8192 x 8192 (67 MP) stays under Pillow's own default
# (89.5 MP, above which plain `datasets`/Pillow warn and at twice that refuse), so every image a
# build accepts loads with plain `datasets`; an RGB decode at the limit needs ~200 MB.
DEFAULT_MAX_PIXELS = 8192 * 8192
MAX_PIXELS_ENV = "GGT_MAX_PIXELS"
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS  # Pillow's own check as a backstop (it refuses at 2x)

# The image file names every folder scanner accepts (matched case-insensitively). Defined once, in
# the schema (the raw layout's `{id}.{png,jpg,jpeg,webp}`), and used from here by every scanner.
IMAGE_SUFFIXES: tuple[str, ...] = schema.IMAGE_SUFFIXES
TEMP_SUFFIX = ".tmp"  # atomic.py's (and finetune's) temporary names: `.NAME.XXXX.tmp`, never listed

ImageSource = str | os.PathLike | bytes | Image.Image
EXIF_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """An image that cannot be read or used; the message names the file and what to do."""


def max_pixels() -> int:
    """The pixel limit in force: `GGT_MAX_PIXELS` if set (an integer), else DEFAULT_MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{MAX_PIXELS_ENV}={text!r}: expected a positive integer number of pixels, e.g. 67108864")
    return int(text)


def check_pixels(width: int, height: int, label: str = "<image bytes>") -> None:
    """Refuse an image whose declared size is over the shared pixel limit, before decoding it."""
    limit = max_pixels()
    if width * height > limit:
        raise ImageError(
            f"{label}: {width}x{height} = {width * height:,} pixels is over the limit of {limit:,} "
            f"(set {MAX_PIXELS_ENV} to allow larger images, or downscale the file)"
        )


def png_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when `data` is not a PNG."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _label(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "<image bytes>"


def open_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Open and fully decode an image from a path, bytes or PIL image; EXIF orientation applied.

    Raises ImageError naming the file for missing, empty, truncated or non-image input.
    """
    label = _label(source, name)
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{label}: file not found")
            data = path.read_bytes()
        else:
            data = source
        if not data:
            raise ImageError(f"{label}: empty file (0 bytes)")
        try:
            img = Image.open(io.BytesIO(data))
            check_pixels(*img.size, label)
            img.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{label}: not an image Pillow can read (PNG, JPEG, WEBP expected)") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{label}: cannot decode image ({err}); the file may be truncated") from None
        except Image.DecompressionBombError as err:
            raise ImageError(f"{label}: image too large to decode safely ({err}); the limit is {max_pixels():,} pixels "
                             f"(set {MAX_PIXELS_ENV} to allow larger images, or downscale the file)") from None
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose the pixels
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB following the module's policy."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "RGBa", "RGBX"):
        return img.convert("RGB")  # alpha dropped, colour kept as stored
    if mode in ("LA", "La"):
        return img.getchannel(0).convert("RGB")
    if mode in ("P", "PA"):
        return img.convert("RGBA").convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F" and arr.max() <= 1.0:
            top = 1.0
        gray = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return img.convert("RGB")


def load_rgb(source: ImageSource, name: str | None = None) -> np.ndarray:
    """Decode to a uint8 RGB array (H, W, 3) with the module's EXIF and mode policy."""
    return np.asarray(to_rgb(open_image(source, name)))


def encode_png(img: Image.Image | np.ndarray, compress_level: int = 6) -> bytes:
    """Encode a PIL image or uint8 array as PNG bytes (lossless)."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image, after EXIF orientation."""

    format: str  # "PNG", "JPEG", "WEBP"
    mode: str
    width: int
    height: int
    orientation: int  # EXIF orientation, 1 when absent

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def stored_as_is(self) -> bool:
        """True when the file's bytes can be stored unchanged: RGB and not EXIF-rotated."""
        return self.mode == "RGB" and self.orientation == 1


def inspect_image(source: str | os.PathLike | bytes, verify: str = "fast", name: str | None = None) -> ImageInfo:
    """Read an image's header and check its integrity without keeping the pixels.

    `source` is a path or the file's bytes (then `name` labels errors). verify="fast" checks
    what can be checked without decoding the pixels (PNG chunk CRCs up to IEND, the JPEG
    end-of-image marker); verify="full" decodes every pixel. Raises ImageError naming the file.
    """
    label = _label(source, name)
    if isinstance(source, bytes):
        data = source
    else:
        p = Path(source)
        if not p.is_file():
            raise ImageError(f"{label}: file not found")
        data = p.read_bytes()
    if not data:
        raise ImageError(f"{label}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, mode, (w, h) = img.format or "", img.mode, img.size
            check_pixels(w, h, label)
            orientation = exif_orientation(img)
            if verify == "full":
                img.load()
        if verify != "full":
            _fast_integrity_check(data, fmt, label)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image Pillow can read (PNG, JPEG, WEBP expected)") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{label}: image too large to decode safely ({err}); the limit is {max_pixels():,} pixels "
                             f"(set {MAX_PIXELS_ENV} to allow larger images, or downscale the file)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{label}: cannot decode image ({err}); the file may be truncated") from None
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return ImageInfo(fmt, mode, w, h, orientation if 1 <= orientation <= 8 else 1)


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation from the header. For PNG, Pillow's getexif() decodes the whole image to
    look for an eXIf chunk after the pixels; only one before them (in img.info) is read here."""
    try:
        if img.format == "PNG":
            exif = Image.Exif()
            if img.info.get("exif"):
                exif.load(img.info["exif"])
        else:
            exif = img.getexif()
        return int(exif.get(EXIF_ORIENTATION_TAG, 1) or 1)
    except Exception:  # a broken EXIF block is treated as no rotation
        return 1


def _fast_integrity_check(data: bytes, fmt: str, label: str) -> None:
    if fmt == "PNG":
        check_png_chunks(data, label)
    elif fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        raise ImageError(f"{label}: JPEG has no end-of-image marker; the file is truncated")


def check_png_chunks(data: bytes, label: str = "<image bytes>") -> None:
    """Walk every PNG chunk and check its CRC, up to IEND: what Pillow's verify() does, in one read."""
    pos, view = 8, memoryview(data)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", view[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        if fast_zlib.crc32(view[pos + 4 : end]) != struct.unpack(">I", view[end : end + 4])[0]:
            raise ImageError(f"{label}: PNG chunk {kind.decode('latin-1')!r} fails its CRC check; the file is corrupt")
        if kind == b"IEND":
            return
        pos = end + 4
    raise ImageError(f"{label}: PNG ends before its IEND chunk; the file is truncated")


def decode_rgb(data: bytes, name: str | None = None) -> np.ndarray:
    """Decode image bytes to uint8 RGB (H, W, 3): `load_rgb`'s policy, faster for plain PNGs.

    8-bit PNGs without an eXIf chunk (no orientation to apply) are decoded by OpenCV, which is
    ~20% faster than Pillow here and gives the same pixels under this policy (alpha dropped,
    gray and palette expanded). Everything else (JPEG, WEBP, 16-bit, EXIF) goes through load_rgb.

    Example:
        >>> arr = decode_rgb(open("photo.png", "rb").read(), "photo.png")  # doctest: +SKIP
    """
    arr, bgr = decode_rgb_or_bgr(data, name)
    if bgr:
        import cv2

        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr


def decode_rgb_or_bgr(data: bytes, name: str | None = None) -> tuple[np.ndarray, bool]:
    """`decode_rgb` without its last step: (pixels, True) when they are still in OpenCV's BGR order.

    For callers that crop first and swap the channels of the crop only (the loaders).
    """
    size = png_header_size(data)
    if size is not None:
        check_pixels(*size, name or "<image bytes>")
    if _is_plain_png(data):
        import cv2  # a core dependency; imported here to keep `import ggt_datasets` light

        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if arr is not None:
            return arr, True
    return load_rgb(data, name), False


def _is_plain_png(data: bytes) -> bool:
    # IHDR is always the first chunk: bit depth at byte 24, colour type at byte 25.
    if not (
        len(data) > 33
        and data[:8] == b"\x89PNG\r\n\x1a\n"
        and data[12:16] == b"IHDR"
        and data[24] == 8
        and data[25] in (0, 2, 3, 4, 6)
    ):
        return False
    # Walk the chunk headers (a few hundred at most; much cheaper than searching the bytes).
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind == b"eXIf":
            return False
        if kind == b"IEND":
            return True
        pos += 12 + length
    return False  # truncated: let Pillow report it


def is_image_name(name: str) -> bool:
    """True for a visible file name with an image suffix (case-insensitive): 'a.PNG' yes, '.a.png' no."""
    return not name.startswith(".") and not name.endswith(TEMP_SUFFIX) and Path(name).suffix.lower() in IMAGE_SUFFIXES


def visible_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Every visible file under `folder`, sorted folder by folder: the walk `image_files` filters.

    Left out: names starting with '.' (hidden files, hidden folders and everything in them, and so
    our own temporary files `.NAME.XXXX.tmp`) and names ending in '.tmp'. Symlink policy: a
    symlinked *folder* is never entered (wherever it points, so a link cannot lead the scan out of
    the tree, into a loop, or list a file twice); a symlinked *file* is listed when its target is a
    file (a folder of links to photos works), a dangling one is left out. `folder` itself may be a
    link. Raises FileNotFoundError / NotADirectoryError naming `folder`, and the OSError of any
    subfolder that cannot be read (a silently skipped folder would silently lose images).
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: folder not found")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    found: list[Path] = []
    pending = [root]
    while pending:
        current = pending.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as err:
            raise OSError(err.errno, f"{current}: cannot list the folder ({err.strerror})") from None
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.endswith(TEMP_SUFFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=True):
                found.append(Path(entry.path))
    return sorted(found)


def image_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The image files under `folder` (IMAGE_SUFFIXES, any case), sorted; `visible_files`'s policy.

    Sorted as paths (folder by folder: 'a/z.png' before 'a-b/c.png'); paths are `folder / ...`,
    not resolved. recursive=False lists `folder` itself only. An empty result is an empty list:
    callers say what they expected. Raises FileNotFoundError / NotADirectoryError naming `folder`.

    Example:
        >>> from ggt_datasets.images import image_files
        >>> image_files("photos/")  # doctest: +SKIP
        [PosixPath('photos/a.jpg'), PosixPath('photos/rain/b.PNG')]
    """
    return [p for p in visible_files(folder, recursive) if is_image_name(p.name)]
