"""Decode one frame image into a square uint8 array of a given size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# What a broken image file raises in PIL: truncated data, bad headers, bombs.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def load_frame(path: Path, size: int) -> np.ndarray:
    """Read an image, resize its short side to ``size`` and crop the centre square.

    JPEGs are decoded at a reduced scale when they are much larger than
    ``size`` (PIL's draft mode), which makes big keyframes cheap.

    Args:
        path: image file (any format PIL reads).
        size: side of the output square.

    Returns:
        ``(size, size, 3)`` uint8 RGB array.

    Raises:
        OSError, SyntaxError, ValueError: the file is missing or not a readable image
            (see :data:`DECODE_ERRORS`).
    """
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
        width, height = image.size
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), Image.BILINEAR)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)))
