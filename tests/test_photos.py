"""A folder of camera-sized RGB photos through every step a user types, one process each, for every preset: a
missing import or registration cannot hide behind an earlier step in the same process."""

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from conftest import SGAN, free_port, write_image_folder
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
    assert config["augment"] == {"improved": "photos", "seed": "shifts"}[preset]
    assert config["pseudo_label_mask"] == {"improved": "adaptive", "seed": "threshold"}[preset]

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

    port = free_port()
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


def test_randaugment_trains_from_the_command_line_and_an_unknown_augmentation_is_one_line(photos, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("SGAN_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert sgan("prepare", "--data", photos, "--run-dir", run).returncode == 0
    result = sgan("train", "--run-dir", run, "--augment", "randaugment", "--iterations", 3, "--batch-size", 10)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["augment"] == "randaugment"
    assert json.loads((run / "history.json").read_text())[-1]["step"] == 3
    result = sgan("train", "--run-dir", run, "--augment", "autoaugment")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid choice: 'autoaugment'" in result.stderr


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


def test_phone_sized_jpegs_prepare_upright_at_reduced_scale_in_little_memory(tmp_path, monkeypatch):
    """12- and 48-megapixel JPEGs (one stored on its side, as phones do, with an EXIF orientation) prepare; Pillow's
    draft mode decodes them at 1/8 scale, so no process of prepare's holds as much as the large photo's pixels."""
    from PIL import Image

    folder = write_image_folder(tmp_path / "data", size=(30, 40), mode="RGB", labeled_per_class=2,
                                test_per_class=0, unlabeled=6)
    def left_white(height, width):
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[:, :width // 2] = 255
        return Image.fromarray(pixels)

    left_white(3000, 4000).save(folder / "unlabeled" / "phone-12mp.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: shown turned a quarter clockwise, so its left half is on top
    left_white(6000, 8000).save(folder / "labeled" / "cat" / "camera-48mp.jpg", quality=90, exif=exif)
    monkeypatch.setenv("SGAN_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    # The largest process of prepare's tree, measured by a parent of its own: this test process's own children
    # include other tests' (a zombie reaped late counts in whichever test reaps it).
    measure = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", measure, SGAN, "prepare", "--data", folder, "--run-dir", run,
                             "--image-size", "32x32"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak = int(result.stderr.strip().splitlines()[-1]) * 1024
    assert peak < 6000 * 8000 * 3, peak  # less than the 48-megapixel photo's pixels decoded whole

    from sgan.run import RunDir

    dataset = RunDir(run).dataset()
    names = json.loads((run / "manifest.json").read_text())["dataset"]
    assert names["train_size"] == 6 + 1 + 6 + 1 and not names.get("skipped")
    camera = np.asarray(dataset.x_train)[0]  # labeled/cat/camera-48mp.jpg sorts first
    assert camera[:12].mean() > 200 and camera[-12:].mean() < 50  # upright: the white half on top
