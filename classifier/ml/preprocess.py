"""The one path from image bytes to pixels, shared by validation, training, evaluation and serving.

Decoding (`coffeeclassifier.imaging`, which the dataset's validation uses too) is Pillow's;
orientation follows EXIF; every mode ends as 8-bit RGB. Resizing to the backbone's input size is
the last step here; normalisation lives inside the model graph, so no caller can apply a
different one.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from coffeeclassifier.imaging import RESAMPLE, decode

# Bump when the pixels this module produces change: cached embeddings are keyed by it.
# 2: images above LARGE_PIXELS are reduced first (smaller ones give the same pixels as in 1).
# 3: a JPEG at least twice the model's input on both sides is decoded at 1/2, 1/4 or 1/8 of its size.
VERSION = 3


def resize(image: Image.Image, size: int) -> np.ndarray:
    """Square `size` × `size` uint8 array, the model's input before its own normalisation."""
    if image.size != (size, size):
        image = image.resize((size, size), RESAMPLE)
    return np.asarray(image, dtype=np.uint8)


def model_input(data: bytes, size: int, *, reduced_jpeg: bool = True) -> np.ndarray:
    """Bytes to the array a model is fed: decode, orient, RGB, resize. `reduced_jpeg=False` gives
    the pixels of VERSION 2 and before (a large JPEG decoded whole), for versions trained on them."""
    return resize(decode(data, at_least=size if reduced_jpeg else None), size)
