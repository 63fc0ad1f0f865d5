"""Decoding images and masks into arrays, whatever their PNG mode or bit depth.

* Images become float32 ``(H, W, 3)`` in [0, 1]: greyscale is replicated to 3 channels (MVTec AD's
  grid, screw and zipper are greyscale), 16-bit data is scaled by its real bit depth, the same
  for every image (``dataset.bit_depth`` when set, else the PNG ``sBIT`` chunk, else 16 bits), and
  transparent pixels are composited on black (``ALPHA_BACKGROUND``).
* Masks become bool ``(H, W)``: any non-zero pixel is anomalous (MVTec AD stores {0, 255}).

Every decoding failure is a :class:`~padim_bench.errors.DataError` naming the file.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

ALPHA_BACKGROUND = 0.0  # transparent pixels are composited on black
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None
    try:
        img.load()
    except _DECODE_ERRORS as e:
        img.close()  # a failed load leaves the file handle open
        raise DataError(f"{path}: cannot decode image ({e})") from None
    return img


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding the pixels.

    Raises:
        DataError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: cannot read image header ({e})") from None


def png_sbit(path: str | Path) -> int | None:
    """Significant bits of a PNG's first channel from its ``sBIT`` chunk (Pillow does not expose
    it), or None when the file is not a PNG or has no such chunk. Reads chunk headers only."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"sBIT":
                    data = f.read(length)
                    return data[0] if data else None
                if kind in (b"IDAT", b"IEND"):
                    return None  # sBIT must come before the image data
                f.seek(length + 4, 1)  # data and CRC
    except OSError:
        return None


def _full_scale(path: Path, bit_depth: int | None) -> float:
    """``2**bits - 1`` for 16-bit data: ``bit_depth`` when given, else the PNG ``sBIT`` chunk, else
    16. The same rule for every image of a dataset, so brightness stays comparable."""
    bits = bit_depth or png_sbit(path) or 16
    return float(2**bits - 1)


def load_image(path: str | Path, bit_depth: int | None = None) -> np.ndarray:
    """Decode an image file to float32 ``(H, W, 3)`` RGB in [0, 1].

    Args:
        path: the image file.
        bit_depth: significant bits of 16-bit data (e.g. 12); None: the PNG ``sBIT`` chunk, else 16.

    Raises:
        DataError: the file is missing, truncated or not a decodable image, or 16-bit data exceeds
            the declared bit depth.
    """
    path = Path(path)
    img = _open(path)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        arr = np.asarray(img).astype(np.float64)
        scale = _full_scale(path, bit_depth)
        if arr.size and arr.max() > scale:
            raise DataError(f"{path}: value {int(arr.max())} exceeds the declared {int(np.log2(scale + 1))}-bit range "
                            "(dataset.bit_depth or the PNG sBIT chunk)")
        arr = arr / scale
        arr = np.clip(arr, 0.0, 1.0)[..., None].repeat(3, axis=2)
        return arr.astype(np.float32)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return np.clip(arr, 0.0, 1.0)[..., None].repeat(3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La", "RGBA", "RGBa", "PA"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        return (rgba[..., :3] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)).astype(np.float32)
    if mode == "1":
        img = img.convert("L")
        mode = "L"
    if mode == "L":
        return _unit_rgb(np.asarray(img)[..., None])
    if mode != "RGB":  # CMYK, YCbCr, ...; converting an RGB image would only copy it
        img = img.convert("RGB")
    return _unit_rgb(np.asarray(img))


def _unit_rgb(u8: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 1 or 3)`` -> float32 ``(H, W, 3)`` ``u8 / 255``, written into one new array
    (a second 4-bytes-per-value temporary costs a few ms per 900 x 900 image in page faults,
    scripts/bench_kernels.py)."""
    out = np.empty(u8.shape[:2] + (3,), dtype=np.float32)
    out[...] = u8  # exact: every uint8 is a float32; greyscale broadcasts to the 3 channels
    out /= 255.0
    return out


def load_mask(path: str | Path) -> np.ndarray:
    """Decode a ground-truth mask to bool ``(H, W)``: any non-zero pixel is anomalous.

    Warns (``UserWarning``) when the maximum is neither 1 nor 255, since such masks are often
    class-id or anti-aliased images where the binarisation deserves a look.

    Raises:
        DataError: the file is missing or not decodable.
    """
    path = Path(path)
    img = _open(path)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] != 2 else arr[..., 0]
    peak = arr.max() if arr.size else 0
    if peak not in (0, 1, 255):
        warnings.warn(f"{path}: mask maximum is {peak} (neither 1 nor 255); every non-zero pixel is taken as anomalous", UserWarning, stacklevel=2)
    return arr != 0
