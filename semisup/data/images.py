"""Decode one frame image into a square uint8 array of a given size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# What a broken image file raises in PIL: truncated data, bad headers, bombs.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageTooLarge(ValueError):
    """An image other than a JPEG beyond PIL's decompression-bomb limit (a JPEG of any size is
    decoded at a reduced scale instead)."""


def load_frame(path: Path, size: int) -> np.ndarray:
    """Read an image, resize its short side to ``size`` and crop the centre square.

    JPEGs are decoded at a reduced scale when they are much larger than
    ``size`` (PIL's draft mode), which makes big keyframes cheap; a JPEG beyond PIL's
    decompression-bomb limit is decoded that way too, as long as the reduced image is within it.

    Args:
        path: image file (any format PIL reads), or a frame stored elsewhere that gives
            its encoded bytes through ``frame_bytes()`` (a frame in shards).
        size: side of the output square.

    Returns:
        ``(size, size, 3)`` uint8 RGB array.

    Raises:
        OSError, SyntaxError, ValueError: the file is missing or not a readable image
            (see :data:`DECODE_ERRORS`); :class:`ImageTooLarge` for an image beyond PIL's limit
            that is not a JPEG.
    """
    with _open(path) as image:
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
        width, height = image.size
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), Image.BILINEAR)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)))


def _open(path: Path) -> Image.Image:
    """``Image.open``, except that a JPEG beyond PIL's decompression-bomb limit is opened without
    that check: :func:`load_frame` decodes it at up to 1/8 scale (draft mode), which is what the
    limit protects (memory). Other formats cannot be decoded smaller and are refused."""
    if hasattr(path, "frame_bytes"):  # a frame in shards (semisup.data.shards.ShardFrame)
        path = io.BytesIO(path.frame_bytes())
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        pass
    from PIL.JpegImagePlugin import JpegImageFile

    if hasattr(path, "seek"):
        path.seek(0)
    try:
        image = JpegImageFile(path)
    except (SyntaxError, OSError):
        raise ImageTooLarge(f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels and not a JPEG, which is all "
                            "semisup decodes at a reduced scale; scale it down first") from None
    width, height = image.size
    image.draft("RGB", (width // 8 or 1, height // 8 or 1))
    if image.size[0] * image.size[1] > 2 * (Image.MAX_IMAGE_PIXELS or 0):
        image.close()
        raise ImageTooLarge(f"{width}x{height} pixels, too large even at 1/8 scale; scale it down first")
    return image
