"""Reading photos into the engine's image layout.

Every image leaves this module as ``(H, W, 3)`` ``uint8`` RGB at full
resolution with the EXIF orientation applied (see docs/CONVENTIONS.md,
"Images"). Whatever cannot be read raises :class:`msma_engine.errors.ImageError`
with the file and the reason, never a Pillow traceback.

Layout decisions:

- Transparency (RGBA, LA, palette with a transparent colour) is composited
  onto **white**: a cut-out portrait then looks like a studio shot instead of
  a face on black, which detectors and skin statistics handle better.
- 16-bit images (PNG ``I;16``, 16-bit RGB/RGBA PNG and TIFF) are scaled to
  8 bit by ``round(x / 257)``, which maps 0 → 0 and 65535 → 255 exactly.
  Pillow decodes 16-bit colour images to 8 bit by dropping the low byte, so
  those are decoded with OpenCV instead.
- 32-bit integer images (mode ``I``) are taken as 16-bit data when any value
  exceeds 255, else as 8-bit; float images (mode ``F`` or float arrays) as
  [0, 1] when their maximum is at most 1, else as [0, 255]; out-of-range
  values are clipped.
- CMYK and other colour spaces go through Pillow's own conversion to RGB.
  Embedded ICC profiles are not applied.
- Animated or multi-page files give their first frame.
- Images up to :data:`MAX_PIXELS` (200 megapixels) are accepted; larger ones
  raise an ImageError before any pixel is decoded.
- Memory is bounded by design: alpha compositing and 16-bit scaling work in row bands
  (a few MB each) with integer arithmetic, writing into the one ``uint8`` result, so a
  14000x14000 RGBA PNG peaks at the decoded image plus the result (1.4 GB measured)
  instead of several full-size float32 copies (7.5 GB before).

Example:
    >>> img = load_image("portrait.jpg")  # doctest: +SKIP
    >>> img.pixels.shape, img.pixels.dtype  # doctest: +SKIP
    ((1200, 900, 3), dtype('uint8'))
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from msma_engine.errors import ImageError

__all__ = [
    "LoadedImage",
    "MAX_PIXELS",
    "load_image",
    "load_image_array",
    "apply_exif_orientation",
    "to_cv2_affine",
]

logger = logging.getLogger(__name__)

MAX_PIXELS = 200_000_000
"""Largest accepted image, in pixels (width × height)."""

_EXIF_ORIENTATION_TAG = 0x0112
_PIXEL_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo.

    Attributes:
        pixels: ``(H, W, 3)`` ``uint8`` RGB, full resolution, EXIF orientation applied.
        path: The file it came from, or ``None`` for in-memory arrays.
        original_mode: Pillow mode of the file (``"RGB"``, ``"I;16"``, ``"CMYK"``, ...),
            or a description such as ``"uint16 (H, W, 4)"`` for arrays.
        original_size: ``(width, height)`` as stored, before EXIF rotation.
    """

    pixels: np.ndarray
    path: Path | None
    original_mode: str
    original_size: tuple[int, int]

    @property
    def name(self) -> str:
        """A short label for messages: the file name, or ``"<array>"``."""
        return str(self.path) if self.path is not None else "<array>"


def load_image(path: str | Path) -> LoadedImage:
    """Read an image file into ``(H, W, 3)`` ``uint8`` RGB.

    Args:
        path: JPEG, PNG, WebP, TIFF, BMP, GIF, ... file.

    Returns:
        The decoded :class:`LoadedImage`.

    Raises:
        ImageError: missing file, a folder, not an image, truncated or corrupt
            data, more than :data:`MAX_PIXELS` pixels, or an unusable layout.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageError(f"{path}: file is empty")

    with _pixel_limit(MAX_PIXELS):
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise ImageError(f"{path}: not an image in a format Pillow can read") from exc
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{path}: image is too large ({exc})") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{path}: corrupt image header ({exc})") from exc

        width, height = img.size
        if width * height > MAX_PIXELS:
            raise ImageError(
                f"{path}: image is {width}x{height} = {width * height / 1e6:.0f} megapixels, "
                f"more than the {MAX_PIXELS / 1e6:.0f} megapixels this tool accepts; downscale it first"
            )
        if width == 0 or height == 0:
            raise ImageError(f"{path}: image has zero size {width}x{height}")

        mode = img.mode
        # Before getexif(): reading EXIF may decode the image and clear the tile list.
        sixteen_bit = _is_16bit_colour(img)
        orientation = _exif_orientation(img)
        try:
            if sixteen_bit:
                rgb = _decode_16bit_colour(data, path)
            else:
                img.load()
                rgb = _pil_to_rgb8(img, path)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{path}: truncated or corrupt image data ({exc})") from exc

    rgb = apply_exif_orientation(rgb, orientation)
    logger.debug("loaded %s: mode %s, %dx%d, orientation %d", path, mode, width, height, orientation)
    return LoadedImage(pixels=np.ascontiguousarray(rgb), path=path, original_mode=mode, original_size=(width, height))


def load_image_array(array: np.ndarray, name: str = "<array>") -> LoadedImage:
    """Bring an in-memory image to ``(H, W, 3)`` ``uint8`` RGB.

    Args:
        array: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` image
            (RGB channel order) of dtype ``uint8``, ``uint16`` (scaled by 1/257),
            ``bool`` or float (``[0, 1]`` if its maximum is at most 1, else
            ``[0, 255]``; clipped). Alpha is composited onto white.
        name: Label used in error messages.

    Returns:
        A :class:`LoadedImage` with ``path=None``.

    Raises:
        ImageError: wrong number of dimensions or channels, empty, unsupported
            dtype, or non-finite float values.
    """
    arr = np.asarray(array)
    desc = f"{arr.dtype} {tuple(arr.shape)}"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: image has zero size {tuple(arr.shape)}")
    arr8 = _to_uint8(arr, name)
    if arr8.ndim == 2:
        rgb = np.repeat(arr8[..., None], 3, axis=2)
    elif arr8.shape[2] == 4:
        rgb = _composite_on_white(arr8[..., :3], arr8[..., 3])
    else:
        rgb = arr8
    h, w = rgb.shape[:2]
    return LoadedImage(pixels=np.ascontiguousarray(rgb), path=None, original_mode=desc, original_size=(w, h))


def apply_exif_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an ``(H, W, ...)`` array so that EXIF ``orientation`` becomes 1.

    Args:
        pixels: ``(H, W)`` or ``(H, W, C)`` array as stored in the file.
        orientation: EXIF tag 0x0112 value, 1-8; anything else is treated as 1.

    Returns:
        The array as it should be displayed (a view where possible).
    """
    swap = (1, 0) + tuple(range(2, pixels.ndim))
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(swap)
    if orientation == 6:
        return np.rot90(pixels, k=-1)
    if orientation == 7:
        return pixels.transpose(swap)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(pixels, k=1)
    return pixels


def to_cv2_affine(matrix: np.ndarray) -> np.ndarray:
    """Convert a ``(2, 3)`` affine between continuous pixel coordinates to OpenCV's convention.

    docs/CONVENTIONS.md puts pixel centres at ``+0.5``; ``cv2.warpAffine``
    puts them on integers. ``dst = A src + b`` becomes ``A src' + b + A·(½, ½) − ½``.
    """
    out = np.asarray(matrix, dtype=np.float64).copy()
    out[:, 2] += 0.5 * out[:, :2].sum(axis=1) - 0.5
    return out


@contextlib.contextmanager
def _pixel_limit(max_pixels: int):
    """Let Pillow open images up to ``max_pixels`` (its own default is ~89 MP).

    Pillow only offers a module-level limit, so it is raised for the duration
    of one read; we enforce :data:`MAX_PIXELS` ourselves right after ``open``.
    """
    with _PIXEL_LIMIT_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max(max_pixels, previous or 0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _exif_orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the photo unreadable
        logger.warning("ignoring unreadable EXIF data")
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_16bit_colour(img: Image.Image) -> bool:
    """True for 16-bit-per-channel RGB/RGBA files that Pillow would truncate to 8 bit."""
    if img.mode not in ("RGB", "RGBA") or not img.tile:
        return False
    args = img.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode


def _decode_16bit_colour(data: bytes, path: Path) -> np.ndarray:
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"{path}: 16-bit colour image could not be decoded")
    arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # OpenCV gives BGR(A)
    return load_image_array(arr, str(path)).pixels


def _pil_to_rgb8(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return load_image_array(_numeric_mode_array(img), str(path)).pixels
    if mode in ("RGBA", "LA", "RGBa", "La", "PA") or (mode == "P" and "transparency" in img.info):
        w, h = img.size
        out = np.empty((h, w, 3), np.uint8)
        for rows in _bands(h, w * 4):  # a band at a time: no full-size RGBA copy
            band = img.crop((0, rows.start, w, rows.stop))
            rgba = np.asarray(band if band.mode == "RGBA" else band.convert("RGBA"))
            _composite_on_white(rgba[..., :3], rgba[..., 3], out=out[rows])
        return out
    if mode == "RGB":
        return np.asarray(img)
    return np.asarray(img.convert("RGB"))


def _numeric_mode_array(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        return arr.astype(np.uint16)
    if img.mode == "I":
        # 32-bit integer mode: Pillow uses it for some 16-bit files.
        if arr.max(initial=0) > 255:
            return np.clip(arr, 0, 65535).astype(np.uint16)
        return np.clip(arr, 0, 255).astype(np.uint8)
    return arr.astype(np.float32)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return _scale16(arr)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise ImageError(f"{name}: integer image values outside [0, 65535] ({arr.dtype})")
        if arr.max(initial=0) > 255:
            return _scale16(arr)
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(f"{name}: float image contains NaN or infinite values")
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return np.round(np.clip(arr.astype(np.float32) * scale, 0.0, 255.0)).astype(np.uint8)
    raise ImageError(f"{name}: unsupported image dtype {arr.dtype}")


_BAND_BYTES = 1 << 22
"""Row-band budget: the integer working copies of one band take a few times this (4 MB)."""


def _bands(height: int, bytes_per_row: int):
    """Row slices covering ``height`` rows, about :data:`_BAND_BYTES` of ``bytes_per_row`` each."""
    step = max(1, _BAND_BYTES // max(1, bytes_per_row))
    for start in range(0, height, step):
        yield slice(start, min(height, start + step))


def _scale16(arr: np.ndarray) -> np.ndarray:
    """``round(x / 257)`` of values in [0, 65535] → uint8, in row bands (exact: no ties exist)."""
    out = np.empty(arr.shape, np.uint8)
    row = int(np.prod(arr.shape[1:], dtype=np.int64)) * 4
    for rows in _bands(arr.shape[0], row):
        out[rows] = (arr[rows].astype(np.uint32) + 128) // 257
    return out


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 ``rgb`` over white with ``(H, W)`` uint8 ``alpha``, rounded.

    Integer arithmetic in row bands, written into ``out`` (allocated when None):
    ``round((c * a + 255 * (255 - a)) / 255)``, exact (no ties with an odd divisor).
    """
    h, w = alpha.shape
    out = np.empty((h, w, 3), np.uint8) if out is None else out
    for rows in _bands(h, w * 16):
        a = alpha[rows].astype(np.uint32)[..., None]
        out[rows] = (rgb[rows].astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out
