"""HTTP service for the ONNX classifier: FastAPI on uvicorn, onnxruntime and numpy only.

POST /v1/predict takes either JSON `{"images": [...]}` (nested lists of integers 0-255, shaped
[N, H, W, C] or [N, H, W] for one channel) or one raw PNG/JPEG body (Content-Type image/png or image/jpeg).
Every bad request gets a 4xx with `{"error": "..."}`; none reaches a 500.
"""

import io
import json

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from deploy.runtime import Classifier, InputError

IMAGE_TYPES = ("image/png", "image/jpeg")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def create_app(model_path, max_batch: int = 256, max_body_bytes: int = 8 * 1024 * 1024) -> FastAPI:
    classifier = Classifier(model_path, max_batch=max_batch)
    app = FastAPI(title="sgan classifier", version="1")

    @app.exception_handler(RequestError)
    async def request_error(_, error: RequestError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(_, error: HTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model():
        return classifier.metadata

    @app.post("/v1/predict")
    async def predict(request: Request):
        body = await _read_limited(request, max_body_bytes)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in IMAGE_TYPES:
            images = _decode_image(body, classifier.image_shape)
        elif content_type == "application/json":
            images = _json_images(body)
        else:
            raise RequestError(415, f"Content-Type must be application/json, {' or '.join(IMAGE_TYPES)}")
        if len(images) > max_batch:
            raise RequestError(413, f"batch of {len(images)} images exceeds the limit of {max_batch}")
        try:
            prediction = classifier.predict(images)
        except InputError as e:
            raise RequestError(422, str(e)) from None
        names = classifier.class_names
        return {
            "classes": prediction.classes.tolist(),
            "labels": [names[c] if c < len(names) else str(c) for c in prediction.classes],
            "probabilities": prediction.probabilities.round(6).tolist(),
        }

    return app


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise RequestError(413, f"body exceeds the limit of {limit} bytes")
    return bytes(body)


def _json_images(body: bytes) -> np.ndarray:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    if not isinstance(payload, dict) or "images" not in payload:
        raise RequestError(422, 'JSON body must be an object with an "images" field')
    try:
        images = np.asarray(payload["images"])
    except (ValueError, TypeError):
        raise RequestError(422, "images must be a rectangular nested list (all images the same shape)") from None
    if images.dtype == np.bool_ or (images.size and not np.issubdtype(images.dtype, np.integer)):
        raise RequestError(422, f"images must hold integers 0-255, got {images.dtype.name} values")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise RequestError(422, f"pixel values must be in 0-255, got {images.min()}..{images.max()}")
    if images.ndim < 3:
        raise RequestError(422, f"images must be a batch [N, H, W, C], got shape {list(images.shape)}")
    return images.astype(np.uint8)


def _decode_image(body: bytes, image_shape: tuple) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(body))
        image.load()
    except (UnidentifiedImageError, OSError) as e:
        raise RequestError(400, f"not a readable PNG or JPEG image ({e})") from None
    array = np.asarray(image.convert("L" if image_shape[-1] == 1 else "RGB"))
    return array.reshape(1, *array.shape[:2], image_shape[-1])
