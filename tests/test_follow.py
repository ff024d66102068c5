"""`sgan serve MODELS_ROOT` follows `latest` under load: real uvicorn workers, real requests from several client
threads, `latest` moved by `sgan models promote`/`rollback` and by hand; no request fails and every answer names
the version that produced it."""

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time

import httpx
import numpy as np
import onnx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from conftest import SGAN, free_port
from test_cli import sgan

from deploy import history

WORKERS, CLIENTS, SWITCH_S = 2, 4, 5


def _version(root, name, run, model_bytes=None):
    path = root / name
    path.mkdir(parents=True)
    for file in ("manifest.json", "metrics.json"):
        shutil.copy(run / file, path / file) if (run / file).exists() else (path / file).write_text("{}")
    (path / "model.onnx").write_bytes(model_bytes or (run / "model.onnx").read_bytes())
    return path


def _other_input_shape(run) -> bytes:
    model = onnx.load(run / "model.onnx")
    for prop in model.metadata_props:
        if prop.key == "input_shape":
            prop.value = json.dumps([32, 32, 3])
    return model.SerializeToString()


def _samples(url) -> dict:
    """/metrics as {(name, version[, outcome]): value}, for the metrics labelled by version."""
    families = text_string_to_metric_families(httpx.get(url + "/metrics").text)
    return {(s.name, s.labels["version"], *([s.labels["outcome"]] if "outcome" in s.labels else [])): s.value
            for family in families for s in family.samples if "version" in s.labels}


class Load:
    """Client threads posting one image at a time, each keeping (time, status or error, version) per request; with
    `pause`, each waits that long between its requests (a steady load that leaves the CPUs to other work)."""

    def __init__(self, url, image, pause=0.0):
        self.stop, self.seen, self.pause = threading.Event(), [[] for _ in range(CLIENTS)], pause
        body = json.dumps({"images": [image.tolist()]})
        self.threads = [threading.Thread(target=self._client, args=(url, body, log)) for log in self.seen]
        for thread in self.threads:
            thread.start()

    def _client(self, url, body, log):
        fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: any worker may answer
        with httpx.Client(base_url=url, timeout=10, limits=fresh) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
                    log.append((time.monotonic(), r.status_code, r.headers.get("x-model-version"),
                                r.json().get("model_version")))
                except httpx.HTTPError as e:
                    log.append((time.monotonic(), repr(e), None, None))
                self.stop.wait(self.pause)

    def finish(self) -> list:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return [entry for log in self.seen for entry in log]

    def wait_for(self, version, since) -> float:
        """The time from which every client's answers come from `version` (each client's last 5 since `since`)."""
        deadline = time.monotonic() + SWITCH_S
        while time.monotonic() < deadline:
            tails = [[e for e in log if e[0] > since][-5:] for log in self.seen]
            if all(len(t) == 5 and {e[2] for e in t} == {version} for t in tails):
                return max(t[0][0] for t in tails)
            time.sleep(0.1)
        pytest.fail(f"the server did not move to {version} within {SWITCH_S} s")


def test_the_server_follows_latest_under_load_and_refuses_versions_that_cannot_serve(exported_run, tmp_path):
    run, _, dataset = exported_run
    root = tmp_path / "models"
    for name in ("v0001", "v0002"):
        _version(root, name, run)
    _version(root, "v0003", run, b"not an onnx model")
    _version(root, "v0004", run, _other_input_shape(run))
    models = ("models", "--models-root", root)
    assert sgan(*models, "promote", "v0001").returncode == 0

    port = free_port()
    server = subprocess.Popen([SGAN, "serve", str(root), "--port", str(port), "--processes", str(WORKERS),
                               "--poll-seconds", "0.2"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        info = httpx.get(url + "/v1/model").json()
        assert info["version"] == "v0001" and info["file"] == str(root / "v0001" / "model.onnx")

        load = Load(url, np.asarray(dataset.x_test[0]))
        time.sleep(1)
        promoted = time.monotonic()
        assert sgan(*models, "promote", "v0002").returncode == 0
        switched = load.wait_for("v0002", promoted)
        assert httpx.get(url + "/readyz").status_code == 200

        result = sgan(*models, "promote", "v0003")  # refused before any server sees it
        assert result.returncode == 2 and "not a loadable ONNX model" in result.stderr
        assert os.readlink(root / "latest") == "v0002"
        for bad in ("v0003", "v0004"):  # moved by hand, past the registry: the server refuses it and stays
            history.point_latest(root, bad)
            time.sleep(1.5)
        for bad in ("v0003", "v0004"):
            assert _samples(url)["sgan_model_loads_total", bad, "refused"] == WORKERS
        history.point_latest(root, "v0002")

        rolled = time.monotonic()
        result = sgan(*models, "rollback")
        assert result.returncode == 0 and "latest -> v0001 (rolled back from v0002)" in result.stdout
        back = load.wait_for("v0001", rolled)
        time.sleep(1)
        answers = load.finish()

        v2 = httpx.post(url + "/v2/models/sgan/infer", json={"inputs": [
            {"name": "images", "datatype": "UINT8", "shape": [1, *dataset.x_test.shape[1:]],
             "data": np.asarray(dataset.x_test[:1]).ravel().tolist()}]})
        assert v2.json()["model_version"] == "v0001" and v2.headers["x-model-version"] == "v0001"
        samples = _samples(url)
        assert samples["sgan_model_served", "v0001"] == WORKERS and samples["sgan_model_served", "v0002"] == 0
        assert samples["sgan_model_loads_total", "v0002", "loaded"] == WORKERS
        assert samples["sgan_images_classified_total", "v0002"] > 0
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[1]

    assert len(answers) > 200 and all(status == 200 for _, status, _, _ in answers), \
        [a for a in answers if a[1] != 200][:3]
    assert all(header == body for _, _, header, body in answers)
    for start, end, version in ((0, promoted, "v0001"), (switched, rolled, "v0002"), (back, float("inf"), "v0001")):
        assert {v for t, _, v, _ in answers if start <= t < end} == {version}
    assert switched - promoted < SWITCH_S and back - rolled < SWITCH_S
    assert log.count("refused v0003: ") == WORKERS and "still serving v0002" in log, log
    assert log.count("refused v0004: its input shape [32, 32, 3] differs") == WORKERS, log
    assert log.count("serving v0002 (") == WORKERS and log.count("serving v0001 (") == WORKERS, log
    assert "Traceback" not in log


def test_int8_serves_each_versions_edge_model_and_is_refused_where_there_is_none(exported_run, tmp_path):
    from deploy.quantize import quantize

    run, _, dataset = exported_run
    root = tmp_path / "models"
    int8 = quantize(run / "model.onnx", np.asarray(dataset.x_train[:100]))  # published or not at this accuracy
    (_version(root, "v0001", run) / "model.int8.onnx").write_bytes(int8)
    _version(root, "v0002", run)  # no INT8 model published
    history.point_latest(root, "v0001")
    port = free_port()
    server = subprocess.Popen([SGAN, "serve", str(root), "--int8", "--port", str(port)], stderr=subprocess.PIPE,
                              text=True)
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            time.sleep(0.2)
        info = httpx.get(f"http://127.0.0.1:{port}/v1/model").json()
        assert info["file"] == str(root / "v0001" / "model.int8.onnx") and "INT8" in info["quantization"]
    finally:
        server.terminate()
        assert "v0001, INT8 model" in server.communicate(timeout=30)[1]

    history.point_latest(root, "v0002")
    for args, message in (((str(root), "--int8"), "no model.int8.onnx in this version"),
                          ((str(run / "model.onnx"), "--int8"), "--int8 applies to a models root"),
                          ((str(tmp_path / "empty"),), "holds no published version")):
        (tmp_path / "empty").mkdir(exist_ok=True)
        result = subprocess.run([SGAN, "serve", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def _serve(*args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([SGAN, "serve", *map(str, args), "--port", str(port), "--poll-seconds", "0.2"],
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/readyz").status_code == 200:
                return server, url
        assert server.poll() is None, server.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("the server did not become ready")


def test_a_root_without_latest_serves_its_newest_version_a_version_folder_serves_itself(exported_run, tmp_path):
    """A first model that was not promoted can still be served (and is followed once `latest` is set); a port
    outside 1-65535, a port in use and a missing folder are one line each."""
    run, _, _ = exported_run
    root = tmp_path / "models"
    _version(root, "v0001", run)
    _version(root, "v0002", run)
    server, url = _serve(root)
    try:
        assert httpx.get(url + "/v1/model").json()["version"] == "v0002"
        port = url.rsplit(":", 1)[1]
        for args, message in (((root, "--port", "80000"), "--port 80000: must be between 1 and 65535"),
                              ((root, "--port", port), f"127.0.0.1:{port}: Address already in use"),
                              ((tmp_path / "nowhere",), "nowhere: no such file or folder")):
            result = subprocess.run([SGAN, "serve", *map(str, args)], capture_output=True, text=True, timeout=60)
            assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, \
                result.stderr
        history.point_latest(root, "v0001")
        deadline = time.monotonic() + SWITCH_S
        while httpx.get(url + "/v1/model").json()["version"] != "v0001":
            assert time.monotonic() < deadline, "`latest`, once set, was not followed"
            time.sleep(0.2)
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[1]
    assert "no version is promoted to `latest` yet; using the newest, v0002" in log, log

    history.point_latest(root, "v0002")
    server, url = _serve(root / "v0001")  # that version, whatever `latest` says
    try:
        time.sleep(1)
        info = httpx.get(url + "/v1/model").json()
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert info["version"] == "v0001" and info["file"] == str(root / "v0001" / "model.onnx")
