"""A folder of camera-sized RGB photos through every step a user types, one process each, for every preset: a
missing import or registration cannot hide behind an earlier step in the same process."""

import json
import socket
import subprocess
import time

import httpx
import pytest
from conftest import SGAN, write_image_folder
from test_cli import sgan

from sgan.config import PRESETS


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """640x480 RGB photos (PNG and JPEG) in 3 classes: 4 labeled and 3 test images per class, 30 unlabeled."""
    return write_image_folder(tmp_path_factory.mktemp("photos") / "data", size=(480, 640), mode="RGB",
                              labeled_per_class=4, test_per_class=3, unlabeled=30)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_step_in_its_own_process(photos, tmp_path, monkeypatch, preset):
    run = tmp_path / "run"
    monkeypatch.setenv("SGAN_CACHE_DIR", str(tmp_path / "cache"))
    result = sgan("prepare", "--data", photos, "--run-dir", run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "images brought to 24x32 (the labeled images are mostly 480x640)" in result.stdout
    assert json.loads((run / "manifest.json").read_text())["dataset"]["image_shape"] == [24, 32, 3]

    # a global batch of 10 over 3 classes: the class-balanced batches of `improved` rotate the remainder
    result = sgan("train", "--run-dir", run, "--preset", preset, "--iterations", 4, "--batch-size", 10)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 10
    assert config["architecture"] == {"improved": "conv-gap", "seed": "conv"}[preset]  # colour: chosen by shape

    for step in ("evaluate", "export"):
        result = sgan(step, "--run-dir", run)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["class_names"] == ["cat", "dog", "frog"]
    assert (run / "model.onnx").exists()

    camera_photo = photos / "labeled" / "dog" / "dog1.jpg"
    result = sgan("predict", run / "model.onnx", camera_photo, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    [answer] = json.loads(result.stdout)
    assert answer["label"] in ("cat", "dog", "frog") and 0 < answer["probability"] <= 1

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([SGAN, "serve", run / "model.onnx", "--port", str(port)], stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(150):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            response = client.post("/v1/predict", content=camera_photo.read_bytes(),
                                   headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200, response.text
        assert response.json()["labels"] == [answer["label"]]
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_size_that_cannot_fit_in_memory_is_refused_before_training(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("SGAN_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert sgan("prepare", "--data", photos, "--run-dir", run, "--image-size", "480x640").returncode == 0
    started = time.time()
    result = sgan("train", "--run-dir", run)
    assert result.returncode == 2 and time.time() - started < 30 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "training 480x640x3 images with batch 100 x 1 worker(s) here needs about" in line
    assert "GB is available: prepare with a smaller --image-size" in line
    assert not (run / "checkpoints").exists() and not (run / "config.json").exists()
