"""Prometheus metrics with the official client, shared by all worker processes of one server.

`sgan serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker imports this module,
so every process writes its samples there and `/metrics` sums them (prometheus_client's multiprocess mode).
"""

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("sgan_http_requests_total", "HTTP requests answered, by route and status", ["route", "status"])
LATENCY = Histogram("sgan_http_request_duration_seconds", "time from request to the last byte sent", ["route"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
BATCH = Histogram("sgan_inference_batch_size", "images per onnxruntime call",
                  buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
IMAGES = Counter("sgan_images_classified_total", "images classified, by model version", ["version"])
SERVED = Gauge("sgan_model_served", "worker processes serving each model version", ["version"],
               multiprocess_mode="livesum")
LOADS = Counter("sgan_model_loads_total", "model versions loaded or refused by a worker", ["version", "outcome"])


def observe_batch(size: int, version: str):
    BATCH.observe(size)
    IMAGES.labels(version).inc(size)


def model_load(version: str, outcome: str):
    LOADS.labels(version, outcome).inc()


def model_switch(old: str | None, new: str):
    if old is not None:
        SERVED.labels(old).set(0)
    SERVED.labels(new).set(1)
    model_load(new, "loaded")


def exposition() -> tuple[bytes, str]:
    """The text format over every worker's samples (or this process's alone, outside multiprocess mode)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (unknown paths as `other`, so a scanner
    cannot blow up the label set). Plain ASGI: a BaseHTTPMiddleware would cost more than inference."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            REQUESTS.labels(route, str(status[0])).inc()
            LATENCY.labels(route).observe(time.perf_counter() - started)
