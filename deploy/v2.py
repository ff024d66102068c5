"""The Open Inference Protocol (KServe v2 REST) over the same classifier, so standard clients and serving
platforms (KServe, Seldon, Triton's HTTP clients) work unchanged. Tensors travel as JSON, row-major."""

import math

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from deploy import contract, decoding
from deploy.decoding import RequestError

def router(service) -> APIRouter:
    """`service`: the server's state (the served model, name, limits, readiness)."""
    routes = APIRouter(prefix="/v2", tags=["Open Inference Protocol (v2)"])

    def model(name: str):
        if name != service.model_name:
            raise RequestError(404, f"unknown model {name!r}; this server serves {service.model_name!r}")

    @routes.get("", response_model=contract.ServerMetadata)
    async def server_metadata():
        return {"name": "sgan", "version": service.served.version, "extensions": []}

    @routes.get("/health/live", response_model=contract.Live)
    async def live():
        return {"live": True}

    @routes.get("/health/ready", response_model=contract.Ready, responses=contract.responses(503))
    async def ready():
        service.require_ready()
        return {"ready": True}

    @routes.get("/models/{name}", response_model=contract.ModelMetadata, responses=contract.responses(404))
    async def model_metadata(name: str):
        model(name)
        served = service.served
        classifier = served.classifier
        return {"name": name, "versions": [served.version], "platform": "onnxruntime_onnx",
                "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, *classifier.image_shape]}],
                "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classifier.class_names)]},
                            {"name": "class", "datatype": "INT64", "shape": [-1]}]}

    @routes.get("/models/{name}/ready", response_model=contract.ModelReady, responses=contract.responses(404, 503))
    async def model_ready(name: str):
        model(name)
        service.require_ready()
        return {"name": name, "ready": True}

    @routes.post("/models/{name}/infer", response_model=contract.InferResponse,
                 responses=contract.responses(400, 404, 413, 422), openapi_extra=contract.request_body(contract.model_schema(contract.InferRequest)))
    async def infer(name: str, request: Request, response: Response):
        model(name)
        served = service.served
        response.headers[contract.VERSION_HEADER] = served.version
        payload = decoding.parse_json(await decoding.read_limited(request, service.max_body_bytes))
        try:
            parsed = contract.InferRequest.model_validate(payload)
        except ValidationError as e:
            raise RequestError(422, f"not an inference request: {_first_error(e)}") from None
        images = _images(parsed, served.classifier.image_shape, service.max_batch)
        prediction = service.predict(served, images)
        outputs = {
            "probabilities": {"name": "probabilities", "datatype": "FP32", "shape": list(prediction.probabilities.shape),
                              "data": prediction.probabilities.ravel().tolist()},
            "class": {"name": "class", "datatype": "INT64", "shape": [len(prediction.classes)],
                      "data": prediction.classes.tolist()},
        }
        wanted = [o.name for o in parsed.outputs] if parsed.outputs else list(outputs)
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise RequestError(422, f"unknown output {unknown[0]!r}; outputs are {', '.join(outputs)}")
        return {"model_name": name, "model_version": served.version, "id": parsed.id,
                "outputs": [outputs[n] for n in wanted]}

    return routes


def _images(request: contract.InferRequest, image_shape: tuple, max_batch: int) -> np.ndarray:
    tensor = request.inputs[0]  # one, named "images", of an integer type: the request model checked
    expected = [tensor.shape[0], *image_shape]
    if tensor.shape != expected:
        raise RequestError(422, f"shape {tensor.shape} must be [N, {', '.join(map(str, image_shape))}]")
    if tensor.shape[0] > max_batch:
        raise RequestError(422, f"batch of {tensor.shape[0]} images exceeds the limit of {max_batch}")
    array = decoding.integer_array(tensor.data, "data", max_batch=max_batch * math.prod(image_shape), min_ndim=1)
    if array.size != math.prod(tensor.shape):
        raise RequestError(422, f"data holds {array.size} values; shape {tensor.shape} needs {math.prod(tensor.shape)}")
    return array.reshape(tensor.shape)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
