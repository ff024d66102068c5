"""The HTTP service through real requests to a real uvicorn server (2 worker processes) on a loopback port.

The server runs as the slim image runs it (`python -m deploy.serve`), with TensorFlow made unimportable,
so these tests also prove that serving needs no TensorFlow.
"""

import io
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import psutil
import pytest
from conftest import SGAN, free_port
from PIL import Image

import sgan.images as _heic  # noqa: F401 - registers HEIC with Pillow, for writing too

WORKERS = 2
RSS_BOUND_MB = 600  # per server process, after the hostile set


@pytest.fixture(scope="module")
def server(exported_run, tmp_path_factory):
    run, _, dataset = exported_run
    blocked = tmp_path_factory.mktemp("no-tensorflow")
    for module in ("tensorflow", "keras", "tf2onnx"):
        (blocked / f"{module}.py").write_text(f"raise ImportError('the serving code must not import {module}')\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.serve", str(run / "model.onnx"), "--port", str(port), "--processes", str(WORKERS),
         "--max-batch", "8", "--max-body-bytes", "200000"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    for _ in range(300):
        try:
            if client.get("/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("server did not become ready")
    yield client, dataset, run, process
    process.terminate()
    process.wait(timeout=20)
    assert process.returncode is not None


def _png(array, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _server_processes(process) -> list:
    parent = psutil.Process(process.pid)
    return [parent, *parent.children(recursive=True)]


def test_health_readiness_and_model_metadata(server):
    client, dataset, _, _ = server
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    meta = client.get("/v1/model").json()
    assert meta["input_shape"] == [28, 28, 1] and meta["dataset_sha256"] == dataset.checksums
    assert meta["class_names"] == [str(k) for k in range(10)]


def test_json_batch_prediction_matches_the_runtime(server):
    from deploy.runtime import Classifier

    client, dataset, run, _ = server
    images = dataset.x_test[:4]
    response = client.post("/v1/predict", json={"images": images.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Classifier(run / "model.onnx").predict(images)
    assert body["classes"] == expected.classes.tolist()
    assert body["labels"] == [str(c) for c in expected.classes]
    np.testing.assert_allclose(body["probabilities"], expected.probabilities, atol=1e-6)


def test_png_upload(server):
    client, dataset, _, _ = server
    response = client.post("/v1/predict", content=_png(dataset.x_test[0, :, :, 0]), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert len(response.json()["classes"]) == 1


def test_images_of_other_sizes_and_modes_are_brought_to_the_model_shape(server):
    client, dataset, _, _ = server
    digit = Image.fromarray(dataset.x_test[0, :, :, 0])
    expected = client.post("/v1/predict", json={"images": dataset.x_test[:1].tolist()}).json()["classes"]
    for image, kind in ((digit.resize((56, 56), Image.Resampling.NEAREST), "PNG"), (digit.convert("RGB"), "PNG"),
                        (digit.convert("RGBA"), "PNG"), (digit.convert("P"), "PNG"), (digit, "JPEG"),
                        (digit, "WEBP"), (digit, "AVIF"), (digit, "HEIC")):
        buffer = io.BytesIO()
        image.save(buffer, format="HEIF" if kind == "HEIC" else kind,
                   **({"lossless": True} if kind == "WEBP" else {} if kind == "PNG" else {"quality": 100}))
        response = client.post("/v1/predict", content=buffer.getvalue(), headers={"Content-Type": f"image/{kind.lower()}"})
        assert response.status_code == 200, (image.mode, image.size, response.text)
        assert response.json()["classes"] == expected, (image.mode, image.size, kind)


def test_open_inference_protocol(server):
    from deploy.runtime import Classifier

    client, dataset, run, _ = server
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/sgan/ready").json() == {"name": "sgan", "ready": True}
    meta = client.get("/v2/models/sgan").json()
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28, 1]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "class"]

    images = dataset.x_test[:3]
    request = {"id": "r1", "inputs": [{"name": "images", "shape": [3, 28, 28, 1], "datatype": "UINT8",
                                       "data": images.ravel().tolist()}]}
    response = client.post("/v2/models/sgan/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Classifier(run / "model.onnx").predict(images)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert body["id"] == "r1" and body["model_name"] == "sgan"
    assert outputs["probabilities"]["shape"] == [3, 10] and outputs["probabilities"]["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 10)), expected.probabilities, atol=1e-6)
    assert outputs["class"]["data"] == expected.classes.tolist()

    only_class = client.post("/v2/models/sgan/infer", json={**request, "outputs": [{"name": "class"}]}).json()
    assert [o["name"] for o in only_class["outputs"]] == ["class"]
    assert client.post("/v2/models/other/infer", json=request).status_code == 404


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
    ("not an image", {"content": b"GIF89a....", "headers": {"Content-Type": "image/png"}}, 400, "not a readable PNG, JPEG"),
    ("image too large", {"content": _png(np.zeros((2100, 2100), np.uint8)), "headers": {"Content-Type": "image/png"}},
     413, "exceeds the limit of 4194304 pixels"),
    ("unsupported type", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415, "Content-Type must be"),
    ("batch too large", {"json": {"images": np.zeros((9, 28, 28, 1), int).tolist()}}, 422, "exceeds the limit of 8"),
    ("body too large", {"content": b"0" * 300000, "headers": {"Content-Type": "application/json"}}, 413,
     "exceeds the limit of 200000"),
])
def test_bad_requests_get_4xx_json_errors(server, name, request_kwargs, status, message):
    client = server[0]
    response = client.post("/v1/predict", **request_kwargs)
    assert response.status_code == status, (name, response.text)
    assert message in response.json()["error"], (name, response.text)


def test_chunked_body_over_the_limit_is_refused(server):
    client = server[0]
    chunks = (b"0" * 50000 for _ in range(6))  # no Content-Length: the server must count while reading
    response = client.post("/v1/predict", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]


def test_unknown_routes_and_methods_are_json_4xx_with_allow(server):
    client = server[0]
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json()
    response = client.put("/v1/predict")
    assert response.status_code == 405 and response.headers["allow"] == "POST" and "error" in response.json()


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (its pixel data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _jpeg_declaring(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _hostile_requests(image) -> list:
    """(name, method, path, content, content type): kinds of bodies a scanner or a broken client sends."""
    png, jpeg = "image/png", "image/jpeg"
    json_ = "application/json"
    valid_png = _png(image)
    v2 = "/v2/models/sgan/infer"
    cases = [
        ("deeply nested array", "/v1/predict", b"[" * 100000 + b"]" * 100000, json_),
        ("deeply nested object", "/v1/predict", b'{"a":' * 50000 + b"1" + b"}" * 50000, json_),
        ("nested images 2000 deep", "/v1/predict", b'{"images":' + b"[" * 2000 + b"]" * 2000 + b"}", json_),
        ("integer beyond 64 bits", "/v1/predict", b'{"images": [[[123456789012345678901234567890]]]}', json_),
        ("NaN", "/v1/predict", b'{"images": [[[NaN]]]}', json_),
        ("1e400", "/v1/predict", b'{"images": [[[1e400]]]}', json_),
        ("nulls", "/v1/predict", b'{"images": [[[null]]]}', json_),
        ("objects as pixels", "/v1/predict", b'{"images": [[[{"a": 1}]]]}', json_),
        ("booleans", "/v1/predict", b'{"images": [[[true, false]]]}', json_),
        ("images is a string", "/v1/predict", b'{"images": "AAAA"}', json_),
        ("images is a number", "/v1/predict", b'{"images": 7}', json_),
        ("top-level array", "/v1/predict", b"[1, 2, 3]", json_),
        ("many tiny images", "/v1/predict", b'{"images": [' + b",".join([b"[[0]]"] * 20000) + b"]}", json_),
        ("70 dimensions", "/v1/predict", b'{"images": ' + b"[" * 70 + b"0" + b"]" * 70 + b"}", json_),
        ("invalid UTF-8", "/v1/predict", b'{"images": "\xff\xfe"}', json_),
        ("empty JSON body", "/v1/predict", b"", json_),
        ("empty PNG body", "/v1/predict", b"", png),
        ("PNG declaring 4000x4000", "/v1/predict", _png_declaring(4000, 4000), png),
        ("PNG declaring 100000x100000", "/v1/predict", _png_declaring(100000, 100000), png),
        ("PNG declaring 0x0", "/v1/predict", _png_declaring(0, 0), png),
        ("JPEG declaring 65000x65000", "/v1/predict", _jpeg_declaring(65000, 65000), jpeg),
        ("truncated PNG", "/v1/predict", valid_png[: len(valid_png) // 2], png),
        ("GIF sent as PNG", "/v1/predict", b"GIF89a\x1c\x00\x1c\x00" + b"\0" * 40, png),
        ("garbage bytes", "/v1/predict", bytes(range(256)) * 10, png),
        ("JSON sent as PNG", "/v1/predict", b'{"images": []}', png),
        ("multipart", "/v1/predict", b"--x\r\n\r\nhello\r\n--x--", "multipart/form-data; boundary=x"),
        ("v2 deeply nested", v2, b"[" * 100000 + b"]" * 100000, json_),
        ("v2 not a request", v2, b'{"inputs": 5}', json_),
        ("v2 huge declared shape", v2, b'{"inputs": [{"name": "images", "shape": [1000000000, 28, 28, 1], '
                                      b'"datatype": "UINT8", "data": [0]}]}', json_),
        ("v2 negative shape", v2, b'{"inputs": [{"name": "images", "shape": [-1, 28, 28, 1], '
                                  b'"datatype": "UINT8", "data": [0]}]}', json_),
        ("v2 float tensor", v2, b'{"inputs": [{"name": "images", "shape": [1, 28, 28, 1], '
                                b'"datatype": "FP32", "data": [0.5]}]}', json_),
        ("v2 data too short", v2, b'{"inputs": [{"name": "images", "shape": [1, 28, 28, 1], '
                                  b'"datatype": "UINT8", "data": [1, 2, 3]}]}', json_),
        ("v2 nested 70 deep", v2, b'{"inputs": [{"name": "images", "shape": [1, 28, 28, 1], "datatype": "UINT8", '
                                  b'"data": ' + b"[" * 70 + b"0" + b"]" * 70 + b"}]}", json_),
        ("v2 batch over the limit", v2, b'{"inputs": [{"name": "images", "shape": [9, 28, 28, 1], '
                                        b'"datatype": "UINT8", "data": [' + b",".join([b"0"] * 9 * 784) + b"]}]}", json_),
        ("v2 unknown output", v2, b'{"inputs": [{"name": "images", "shape": [1, 28, 28, 1], "datatype": "UINT8", '
                                  b'"data": [' + b",".join([b"0"] * 784) + b']}], "outputs": [{"name": "x"}]}', json_),
        ("v2 two inputs", v2, b'{"inputs": [{"name": "images", "shape": [0, 28, 28, 1], "datatype": "UINT8", '
                              b'"data": []}, {"name": "b", "shape": [1], "datatype": "UINT8", "data": [1]}]}', json_),
    ]
    return [(name, "POST", path, content, kind) for name, path, content, kind in cases] + [
        ("path traversal", "GET", "/v2/models/..%2F..%2Fetc%2Fpasswd", b"", json_),
        ("unknown model metadata", "GET", "/v2/models/x" * 50, b"", json_),
        ("DELETE on the model", "DELETE", "/v1/model", b"", json_),
        ("HEAD on predict", "HEAD", "/v1/predict", b"", json_),
    ]


def test_hostile_requests_get_4xx_and_the_server_survives_within_memory(server):
    client, dataset, run, process = server
    failures = []
    for name, method, path, content, kind in _hostile_requests(dataset.x_test[0, :, :, 0]):
        response = client.request(method, path, content=content, headers={"Content-Type": kind})
        if not 400 <= response.status_code < 500:
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
        elif method != "HEAD" and "error" not in response.json():
            failures.append(f"{name}: no JSON error body: {response.text[:200]}")
    with socket.create_connection(("127.0.0.1", client.base_url.port)) as raw:  # not HTTP at all
        raw.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert not failures, "\n".join(failures)

    for _ in range(20):  # still answering, and correctly, on every worker
        response = client.post("/v1/predict", json={"images": dataset.x_test[:2].tolist()})
        assert response.status_code == 200
    from deploy.runtime import Classifier

    assert response.json()["classes"] == Classifier(run / "model.onnx").predict(dataset.x_test[:2]).classes.tolist()
    processes = _server_processes(process)
    assert len(processes) >= WORKERS + 1
    rss_mb = {p.pid: p.memory_info().rss / 2**20 for p in processes}
    assert max(rss_mb.values()) < RSS_BOUND_MB, rss_mb


def test_prometheus_metrics_count_requests_across_workers(server):
    client, dataset, _, _ = server
    before = _requests_counted(client, "/v1/predict", "200")
    for _ in range(10):
        assert client.post("/v1/predict", json={"images": dataset.x_test[:3].tolist()}).status_code == 200
    text = client.get("/metrics").text
    assert _requests_counted(client, "/v1/predict", "200") - before >= 10
    assert 'sgan_http_request_duration_seconds_bucket{le="0.005",route="/v1/predict"}' in text
    assert 'sgan_inference_batch_size_bucket{le="4.0"}' in text
    assert 'route="other"' in text or 'status="404"' not in text  # unknown paths never become labels


def _requests_counted(client, route: str, status: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("sgan_http_requests_total{") and f'route="{route}"' in line and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_openapi_declares_bodies_and_every_error(server):
    client = server[0]
    document = client.get("/openapi.json").json()
    predict = document["paths"]["/v1/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "image/png", "image/jpeg", "image/webp",
                                                      "image/avif", "image/heic", "image/heif"}
    assert {"200", "400", "413", "415", "422"} <= set(predict["responses"])
    error = {"$ref": "#/components/schemas/ErrorBody"}
    assert predict["responses"]["413"]["content"]["application/json"]["schema"] == error
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert {"200", "400", "404", "413", "422"} <= set(infer["responses"])
    assert "InferInput" in document["components"]["schemas"]


def test_schema_driven_fuzzing_finds_no_5xx_and_no_contract_violation(server, tmp_path):
    """schemathesis reads /openapi.json and sends positive and negative cases to every operation, with every check.
    A v2 tensor's data length must match its shape, which JSON Schema cannot say: so the check that schema-valid
    requests are accepted runs on the other operations. One worker: CPython 3.11's `ast` is not safe to use from two
    threads at once, and Hypothesis parses its strategies' lambdas ("AST constructor recursion depth mismatch")."""
    client = server[0]
    st = [os.path.join(os.path.dirname(sys.executable), "st"), "run", f"{client.base_url}/openapi.json",
          "--max-examples", "30", "--seed", "1", "--workers", "1", "--generation-database", "none", "--no-color",
          "--phases", "examples,coverage,fuzzing", "--request-timeout", "10"]
    for checks in (["--checks", "all", "--exclude-checks", "positive_data_acceptance"],
                   ["--checks", "positive_data_acceptance", "--exclude-path", "/v2/models/{name}/infer"]):
        result = subprocess.run(st + checks, capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
        assert counts and counts[1] == counts[2] and int(counts[1]) >= 100, result.stdout[-3000:]


def test_serve_refuses_a_bad_model_in_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not onnx")
    result = subprocess.run([SGAN, "serve", str(bad)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not a loadable ONNX model" in result.stderr
