"""The HTTP service's declared contract: request and response models, and every status each endpoint returns.

The handlers parse bodies themselves (limits first, then decoding), so these models serve the OpenAPI
document that clients and schema-driven testers read; `responses(...)` lists the error statuses per endpoint.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

VERSION_HEADER = "X-Model-Version"  # on every prediction (v1 and v2): the version that answered


class ErrorBody(BaseModel):
    error: str = Field(description="one line saying what is wrong with the request")


def images_schema(image_shape: tuple, max_batch: int) -> dict:
    """JSON Schema of `{"images": ...}` for this model: 1 to `max_batch` images of exactly its shape, pixels 0-255
    ([N, H, W] also accepted for one-channel models)."""
    def nested(dims, item):
        for size in reversed(dims):
            item = {"type": "array", "minItems": size, "maxItems": size, "items": item}
        return item

    pixel = {"type": "integer", "minimum": 0, "maximum": 255}
    shapes = [image_shape] + ([image_shape[:-1]] if image_shape[-1] == 1 else [])
    batches = [{"type": "array", "minItems": 1, "maxItems": max_batch, "items": nested(shape, pixel)}
               for shape in shapes]
    return {"title": "PredictRequest", "type": "object", "required": ["images"],
            "properties": {"images": batches[0] if len(batches) == 1 else {"anyOf": batches}}}


class PredictResponse(BaseModel):
    classes: list[int]
    labels: list[str]
    probabilities: list[list[float]]
    model_version: str = Field(description="the version that answered (also the X-Model-Version header)")


class Status(BaseModel):
    status: Literal["ok", "ready", "not ready"]


class ModelInfo(BaseModel):
    """The ONNX model's metadata: input_shape and class_names always, training details when recorded."""

    model_config = {"extra": "allow"}
    input_shape: list[int]
    class_names: list[str]
    version: str = Field(description="a models root's version folder (v0003), or the served file's content hash")
    file: str = Field(description="the ONNX file served")


# Open Inference Protocol (KServe v2 REST), the subset a classifier needs.
class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


INTEGER_TYPES = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")


class InferInput(BaseModel):
    name: Literal["images"]
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=4, max_length=4, description="[N, H, W, C]")
    datatype: Literal[INTEGER_TYPES] = Field(description="UINT8, or any integer type whose values are 0-255")
    data: list[Any] = Field(description="the values in row-major order, flat or nested")
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] | None = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float] | list[int]


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[InferOutput]


ERROR_MEANINGS = {
    400: "malformed body: not JSON, not a readable image, or JSON nested too deeply",
    404: "no such route or model",
    405: "method not allowed (the Allow header lists those that are)",
    413: "body larger than the server's limit",
    415: "unsupported Content-Type",
    422: "well-formed, but not images this model takes (shape, type, range, size, batch limit)",
    503: "not ready (starting or shutting down)",
}


def responses(*statuses: int) -> dict:
    """OpenAPI `responses` for these error statuses, each with the error body."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses}


SCHEMAS: dict = {}  # models that request bodies refer to, merged into the document's components


def model_schema(model) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    SCHEMAS.update(schema.pop("$defs", {}))
    return schema


def request_body(schema: dict, *raw_types: str) -> dict:
    """`openapi_extra` declaring a JSON body of `schema` (and raw bodies of other types), for handlers that read
    the bytes themselves: a parameter would make FastAPI parse the body before the size and depth limits."""
    content = {"application/json": {"schema": schema}}
    content.update({kind: {"schema": {"type": "string", "format": "binary"}} for kind in raw_types})
    return {"requestBody": {"required": True, "content": content}}


def add_schemas(document: dict, model_name: str) -> dict:
    """The shared schemas, and the served model's name as the only value of the v2 `{name}` parameter."""
    document.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "name" and parameter["in"] == "path":
                    parameter["schema"]["enum"] = [model_name]
    return document
