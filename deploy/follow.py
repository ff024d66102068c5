"""What the server serves: one ONNX file, or the version a models root's `latest` points to, followed as it moves.

A worker that sees `latest` move loads and warms the new version in a thread while the old one keeps answering,
then swaps one reference: a request holds the model it started with, so requests in flight finish on the old
version and readiness never drops. A version that cannot serve (unloadable file, another input shape) is refused
with a log line and a metric, and the old one stays.
"""

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy import metrics, registry
from deploy.runtime import Classifier
from sgan.errors import UserError, first_line

FILES = {False: "model.onnx", True: "model.int8.onnx"}  # float (the default), or INT8 with `sgan serve --int8`
log = logging.getLogger("sgan.serve")


@dataclass(frozen=True)
class Served:
    classifier: Classifier
    version: str  # the version folder's name in a models root; the file's content hash otherwise
    path: Path


def latest_version(models_root: Path) -> str:
    version = registry.latest(models_root)
    if version is None:
        raise UserError(f"{models_root}: holds no `latest` link (publish a model first, or serve an .onnx file)")
    return version


def load(source: Path, max_batch: int, version: str | None = None, image_shape: tuple | None = None,
         int8: bool = False) -> Served:
    """`source`: an .onnx file, a version folder, or a models root (then `version`, default what `latest` points
    to, or the newest version while nothing is promoted; `int8`: its INT8 model). Warmed up: it has answered one
    inference. `image_shape`: the input shape it must have (the one clients already send)."""
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    if registry.is_version(source):
        source, version = source.parent, source.name
    if source.is_dir():
        version = version or registry.served(source)[0]
        path = source / version / FILES[int8]
        if not path.is_file():
            raise UserError(f"{source / version}: no {FILES[int8]} in this version"
                            + (" (its INT8 model was not accurate enough to publish)" if int8 else ""))
    else:
        path = source
    classifier = Classifier(path, max_batch=max_batch, threads=1)  # a missing or unloadable file: one line
    version = version or hashlib.sha256(path.read_bytes()).hexdigest()[:12]  # a lone file: its content
    if image_shape and classifier.image_shape != image_shape:
        raise UserError(f"its input shape {list(classifier.image_shape)} differs from the served {list(image_shape)} "
                        "(restart the server to change it)")
    try:
        classifier.predict(np.zeros((1, *classifier.image_shape), np.uint8))
    except Exception as e:  # onnxruntime's own error types: the file does not run as its metadata says
        raise UserError(f"{path}: failed its warm-up inference ({first_line(e)})") from None
    return Served(classifier, version, path)


async def follow(service, models_root: Path, poll_seconds: float):
    """Runs beside the server in each worker: moves `service.served` to each new version `latest` points to."""
    refused = None
    while True:
        await asyncio.sleep(poll_seconds)
        try:
            wanted = latest_version(models_root)
        except UserError:
            continue  # the link is being replaced, or was removed by hand: keep serving
        if wanted in (service.served.version, refused):
            continue
        try:
            new = await asyncio.to_thread(load, models_root, service.max_batch, wanted,
                                          service.served.classifier.image_shape, service.int8)
        except Exception as e:  # whatever is wrong with the new version, the old one keeps serving
            refused = wanted
            metrics.model_load(wanted, "refused")
            log.warning("refused %s: %s; still serving %s", wanted, first_line(e), service.served.version)
            continue
        old, service.served, refused = service.served, new, None
        metrics.model_switch(old.version, new.version)
        log.info("serving %s (%s), was %s", new.version, new.path, old.version)
