"""The HTTP service through real requests to a real uvicorn process on a loopback port."""

import io
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def server(exported_run):
    run, _, dataset = exported_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "sgan.cli", "serve", str(run / "model.onnx"), "--port", str(port),
                                "--max-batch", "8", "--max-body-bytes", "200000"],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    for _ in range(150):
        try:
            if client.get("/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("server did not start")
    yield client, dataset, run
    process.terminate()
    process.wait(timeout=10)
    assert process.returncode is not None


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_and_model_metadata(server):
    client, dataset, _ = server
    assert client.get("/healthz").json() == {"status": "ok"}
    meta = client.get("/v1/model").json()
    assert meta["input_shape"] == [28, 28, 1] and meta["dataset_sha256"] == dataset.checksums


def test_json_batch_prediction_matches_the_runtime(server):
    from deploy.runtime import Classifier

    client, dataset, run = server
    images = dataset.x_test[:4]
    response = client.post("/v1/predict", json={"images": images.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Classifier(run / "model.onnx").predict(images)
    assert body["classes"] == expected.classes.tolist()
    assert body["labels"] == [str(c) for c in expected.classes]
    np.testing.assert_allclose(body["probabilities"], expected.probabilities, atol=1e-6)


def test_png_upload(server):
    client, dataset, _ = server
    response = client.post("/v1/predict", content=_png(dataset.x_test[0, :, :, 0]), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert len(response.json()["classes"]) == 1


@pytest.mark.parametrize("name, request_kwargs, status, message", [
    ("wrong shape", {"json": {"images": np.zeros((1, 10, 10, 1), int).tolist()}}, 422, "must have shape [N, 28, 28, 1]"),
    ("not a batch", {"json": {"images": [1, 2, 3]}}, 422, "must be a batch"),
    ("ragged", {"json": {"images": [[[1, 2]], [[1]]]}}, 422, "rectangular"),
    ("floats", {"json": {"images": np.full((1, 28, 28, 1), 0.5).tolist()}}, 422, "integers 0-255, got float64"),
    ("strings", {"json": {"images": [[["a"]]]}}, 422, "integers 0-255"),
    ("out of range", {"json": {"images": np.full((1, 28, 28, 1), 300).tolist()}}, 422, "must be in 0-255, got 300..300"),
    ("negative", {"json": {"images": np.full((1, 28, 28, 1), -1).tolist()}}, 422, "must be in 0-255"),
    ("no images field", {"json": {"pictures": []}}, 422, '"images" field'),
    ("malformed JSON", {"content": b'{"images": [', "headers": {"Content-Type": "application/json"}}, 400, "malformed JSON"),
    ("not an image", {"content": b"GIF89a....", "headers": {"Content-Type": "image/png"}}, 400, "not a readable PNG"),
    ("wrong image size", {"content": _png(np.zeros((32, 32), np.uint8)), "headers": {"Content-Type": "image/png"}}, 422,
     "got [1, 32, 32, 1]"),
    ("unsupported type", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415, "Content-Type must be"),
    ("batch too large", {"json": {"images": np.zeros((9, 28, 28, 1), int).tolist()}}, 413, "exceeds the limit of 8"),
    ("body too large", {"content": b"0" * 300000, "headers": {"Content-Type": "application/json"}}, 413,
     "exceeds the limit of 200000"),
])
def test_bad_requests_get_4xx_json_errors(server, name, request_kwargs, status, message):
    client, _, _ = server
    response = client.post("/v1/predict", **request_kwargs)
    assert response.status_code == status, (name, response.text)
    assert message in response.json()["error"], (name, response.text)


def test_chunked_body_over_the_limit_is_refused(server):
    client, _, _ = server
    chunks = (b"0" * 50000 for _ in range(6))  # no Content-Length: the server must count while reading
    response = client.post("/v1/predict", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]


def test_unknown_routes_and_methods_are_json_4xx_and_server_survives(server):
    client, _, _ = server
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json()
    assert client.get("/v1/predict").status_code == 405
    assert client.get("/healthz").json() == {"status": "ok"}
