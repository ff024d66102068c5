"""HTTP service for the ONNX classifier: FastAPI on uvicorn, onnxruntime and numpy only (no TensorFlow).

- `POST /v1/predict`: JSON `{"images": [...]}` (nested integers 0-255, [N, H, W, C] or [N, H, W]) or one raw
  image body (Content-Type image/png, image/jpeg, image/webp, image/avif or image/heic);
- the Open Inference Protocol under `/v2` (see deploy/v2.py);
- `GET /healthz` (liveness), `GET /readyz` (readiness), `GET /v1/model`, `GET /metrics` (Prometheus).

Every status an endpoint can return is declared in the OpenAPI document (`/openapi.json`); every client
error is a 4xx with `{"error": "..."}` (deploy/contract.py).
"""

import asyncio
import gc
import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from deploy import contract, decoding, follow, metrics, registry, v2
from deploy.decoding import RequestError
from deploy.runtime import InputError

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/avif", "image/heic", "image/heif")
CONFIG_VARIABLE = "SGAN_SERVE_CONFIG"  # how `sgan serve --processes N` hands create_app's arguments to each worker


class Service:
    """What the handlers share: the model served now (`served`, replaced whole when `latest` moves), its limits,
    and whether it is ready for traffic."""

    def __init__(self, source: Path, max_batch: int, max_body_bytes: int, model_name: str, int8: bool):
        self.source, self.int8 = Path(source), int8
        self.max_batch, self.max_body_bytes, self.model_name = max_batch, max_body_bytes, model_name
        self.served = follow.load(self.source, max_batch, int8=int8)
        metrics.model_switch(None, self.served.version)
        self.ready = False

    def predict(self, served: follow.Served, images):
        """On the model the request started with, whatever `latest` has done since."""
        try:
            prediction = served.classifier.predict(images)
        except InputError as e:
            raise RequestError(422, str(e)) from None
        metrics.observe_batch(len(images), served.version)
        return prediction

    def require_ready(self):
        if not self.ready:
            raise RequestError(503, "not ready")


def create_app(model_path, max_batch: int = 256, max_body_bytes: int = 8 * 1024 * 1024,
               model_name: str = "sgan", poll_seconds: float = 2.0, int8: bool = False) -> FastAPI:
    """`model_path`: an .onnx file, a version folder, or a models root whose `latest` is served and followed
    (deploy/follow.py;
    `int8`: each version's INT8 model)."""
    service = Service(model_path, max_batch, max_body_bytes, model_name, int8)
    image_shape = service.served.classifier.image_shape  # fixed for the server's life: a version may not change it

    @asynccontextmanager
    async def lifespan(_):
        gc.collect()
        gc.freeze()  # the start-up objects (FastAPI, pydantic, onnxruntime) leave the collector's scans: no p99 stalls
        service.ready = True  # the model has answered its warm-up inference
        following = (asyncio.create_task(follow.follow(service, service.source, poll_seconds))
                     if service.source.is_dir() and not registry.is_version(service.source) else None)
        yield
        service.ready = False  # draining: platforms stop routing here
        if following:
            following.cancel()

    app = FastAPI(title="sgan classifier", version="2", lifespan=lifespan,
                  description="Classifies images with an sgan ONNX model. Errors are `{\"error\": \"...\"}`.")
    app.add_middleware(metrics.MetricsMiddleware)

    @app.exception_handler(RequestError)
    async def request_error(_, error: RequestError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(_, error: HTTPException):  # 404 and 405 (with its Allow header) from the router
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def server_error(_, error: Exception):  # a bug, not a client error: logged, and still JSON
        logging.getLogger("sgan.serve").exception("unhandled error")
        return JSONResponse({"error": f"internal error ({type(error).__name__})"}, status_code=500)

    @app.get("/healthz", response_model=contract.Status, tags=["health"])
    async def healthz():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=contract.Status, responses=contract.responses(503), tags=["health"])
    async def readyz():
        """Readiness: the model is loaded and has answered a warm-up inference; false while shutting down."""
        service.require_ready()
        return {"status": "ready"}

    @app.get("/v1/model", response_model=contract.ModelInfo)
    async def model():
        served = service.served
        return {**served.classifier.metadata, "class_names": served.classifier.class_names,
                "version": served.version, "file": str(served.path)}

    @app.post("/v1/predict", response_model=contract.PredictResponse,
              responses=contract.responses(400, 413, 415, 422),
              openapi_extra=contract.request_body(contract.images_schema(image_shape, max_batch), *IMAGE_TYPES))
    async def predict(request: Request):
        served = service.served
        body = await decoding.read_limited(request, max_body_bytes)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in IMAGE_TYPES:
            images = decoding.image_file(body, image_shape)
        elif content_type == "application/json":
            images = decoding.json_images(decoding.parse_json(body), max_batch)
        else:
            raise RequestError(415, f"Content-Type must be application/json, {' or '.join(IMAGE_TYPES)}")
        prediction = service.predict(served, images)
        names = served.classifier.class_names
        return Response(orjson.dumps({  # already the declared shape: skip re-validating it
            "classes": prediction.classes.tolist(),
            "labels": [names[c] if c < len(names) else str(c) for c in prediction.classes],
            "probabilities": prediction.probabilities.astype(np.float64).round(6).tolist(),
            "model_version": served.version,
        }), media_type="application/json", headers={contract.VERSION_HEADER: served.version})

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    async def prometheus():
        """Prometheus text format: requests by route and status, latency histogram, batch sizes."""
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)

    app.include_router(v2.router(service))

    def openapi():
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            app.openapi_schema = contract.add_schemas(document, model_name)
        return app.openapi_schema

    app.openapi = openapi
    return app


def app_from_env() -> FastAPI:
    """The app for one of several uvicorn worker processes, configured by `sgan serve` (deploy/serve.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("sgan serve [worker %(process)d]: %(message)s"))
    log = logging.getLogger("sgan.serve")
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO)
    return create_app(**json.loads(os.environ[CONFIG_VARIABLE]))
