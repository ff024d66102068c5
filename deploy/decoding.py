"""Request bodies to uint8 image batches, with every limit checked before the expensive step.

Hostile bodies are the normal case for a public endpoint: the body size is capped while reading, JSON
is parsed by orjson (nesting depth capped at 1024, integers at 64 bits), the batch size is checked before
any array is built, and an image's declared size is read from its header before a pixel is decoded.
"""

import io

import numpy as np
import orjson

from sgan import images


class RequestError(Exception):
    """A client error: the status and the one-line message of the JSON error body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


async def read_limited(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise RequestError(413, f"body exceeds the limit of {limit} bytes")
    return bytes(body)


def parse_json(body: bytes):
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON: {e}") from None


def json_images(payload, max_batch: int) -> np.ndarray:
    """`{"images": [...]}` -> uint8 array with at least 3 dimensions (the model checks its exact shape)."""
    if not isinstance(payload, dict) or "images" not in payload:
        raise RequestError(422, 'JSON body must be an object with an "images" field')
    return integer_array(payload["images"], "images", max_batch)


def integer_array(values, name: str, max_batch: int, min_ndim: int = 3) -> np.ndarray:
    """Nested lists of integers 0-255 -> uint8 array; the batch (first) dimension is capped first (the body size
    already bounds the rest)."""
    if not isinstance(values, list):
        raise RequestError(422, f"{name} must be a list, got {type(values).__name__}")
    if len(values) > max_batch:
        raise RequestError(422, f"batch of {len(values)} images exceeds the limit of {max_batch}")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        raise RequestError(422, f"{name} must be a rectangular nested list (all images the same shape)") from None
    if array.dtype == np.bool_ or (array.size and not np.issubdtype(array.dtype, np.number)):
        raise RequestError(422, f"{name} must hold integers 0-255, got {array.dtype.name} values")
    if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isreal(array) & (np.round(array) == array)):
        raise RequestError(422, f"{name} must hold integers 0-255, got {array.dtype.name} values")  # 3.0 is one
    if array.size and (array.min() < 0 or array.max() > 255):
        raise RequestError(422, f"pixel values must be in 0-255, got {array.min()}..{array.max()}")
    if array.ndim < min_ndim:
        raise RequestError(422, f"{name} must be a batch [N, H, W, C], got shape {list(array.shape)}")
    return array.astype(np.uint8)


def image_file(body: bytes, image_shape: tuple) -> np.ndarray:
    """One PNG, JPEG, WebP, AVIF or HEIC image of any size up to `images.MAX_PIXELS` -> [1, H, W, C] in the model's shape."""
    try:
        image = images.open_image(io.BytesIO(body))
    except images.TooLarge as e:
        raise RequestError(413, str(e)) from None
    except Exception as e:  # noqa: BLE001 - any failure to read a hostile header is the client's bad file
        raise RequestError(400, f"not a readable {images.NAMES} image ({type(e).__name__})") from None
    try:
        return images.to_shape(image, image_shape)[None]
    except Exception as e:  # noqa: BLE001 - truncated or corrupt pixel data, or an empty image
        raise RequestError(400, f"not a readable {images.NAMES} image ({type(e).__name__}: {e})") from None
