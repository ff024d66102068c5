"""Users' own partially labeled images: image folders and .npz files through `sgan prepare`, bad files, leaks,
no test set, class names end to end, other shapes, and labeling help (`sgan predict --csv --uncertain`)."""

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import SGAN, flow_env, synthetic_images, write_image_folder
from PIL import Image

from sgan import data
from sgan.data.dataset import UNLABELED
from sgan.data.rows import Rows
from sgan.errors import UserError


def sgan(*args, cache: Path):
    result = subprocess.run([SGAN, *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "SGAN_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    return result.returncode, result.stdout, result.stderr


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _single_line_error(code, stderr, *fragments):
    """Exit 2 and one error line (after any progress bars), no traceback."""
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("sgan: error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_image_folder_prepares_with_class_names_mixed_sizes_and_modes(tmp_path):
    folder = write_image_folder(tmp_path / "data")
    Image.new("RGB", (24, 20), (200, 10, 10)).save(folder / "labeled" / "dog" / "odd-size-colour.png")
    before = _tree_digest(folder)
    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["class_names"] == ["cat", "dog", "frog"] and manifest["labeled_by"] == "source"
    assert manifest["dataset"]["image_shape"] == [16, 16, 3]  # most common size; one labeled image is colour
    assert manifest["labels"] == 13 and manifest["per_class"] == [4, 5, 4]
    assert manifest["dataset"]["unlabeled_size"] == 60 and manifest["dataset"]["test_size"] == 9
    assert manifest["dataset"]["files"] == 13 + 60 + 9 and len(manifest["dataset"]["sha256"]["listing"]) == 64
    assert manifest["leaks"] == {"test_images_in_labeled": 0, "test_images_in_unlabeled": 0}
    assert "3 classes: cat, dog, frog" in out and "13 labeled images" in out
    cache = Path(manifest["dataset"]["cache"])
    assert cache.parent == tmp_path / "cache"
    x = np.load(cache / "x_train.npy", mmap_mode="r")
    assert isinstance(x, np.memmap) and x.shape == (73, 16, 16, 3)
    files = json.loads((cache / "files.json").read_text())
    assert len(files) == 82 and all(len(f["sha256"]) == 64 for f in files)
    assert _tree_digest(folder) == before  # read, never written

    dataset = data.load_for_manifest(manifest)  # what training reads: the cache, a batch at a time, not the files
    assert isinstance(dataset.x_train, Rows) and dataset.class_names == ("cat", "dog", "frog")
    np.testing.assert_array_equal(np.asarray(dataset.x_train), x)
    np.testing.assert_array_equal(np.flatnonzero(dataset.y_train != UNLABELED), manifest["indices"])

    code, _, err = sgan("prepare", "--data", folder, "--image-size", "20x12", "--channels", "1", "--run-dir",
                        tmp_path / "run2", cache=tmp_path / "cache")
    assert code == 0, err
    assert json.loads((tmp_path / "run2" / "manifest.json").read_text())["dataset"]["image_shape"] == [20, 12, 1]
    code, _, err = sgan("prepare", "--data", folder, "--labels", "20", "--run-dir", tmp_path / "run3",
                        cache=tmp_path / "cache")
    _single_line_error(code, err, "the data says which images are labeled")


def test_a_corrupt_unlabeled_file_is_skipped_and_listed(tmp_path):
    folder = write_image_folder(tmp_path / "data")
    bad = folder / "unlabeled" / "batch0" / "scraped.png"
    bad.write_bytes((folder / "labeled" / "cat" / "cat0.png").read_bytes()[:60])  # truncated
    (folder / "unlabeled" / "notes.txt").write_text("not an image, not counted")
    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    assert code == 0, err
    assert "left out 1 unlabeled files that cannot be used (listed in skipped.json)" in out
    skipped = json.loads((tmp_path / "run" / "skipped.json").read_text())
    assert [s["file"] for s in skipped] == ["unlabeled/batch0/scraped.png"] and skipped[0]["reason"]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["dataset"]["unlabeled_size"] == 60


@pytest.mark.parametrize("damage, fragments", [
    (lambda f: [p.unlink() for p in (f / "labeled" / "frog").iterdir()], ["labeled/frog", "empty class"]),
    (lambda f: (f / "test" / "horse").mkdir(), ["test/horse", "'horse' is not among labeled/'s classes"]),
    (lambda f: [p.write_bytes(b"junk") for p in (f / "unlabeled").rglob("*.*g")],
     ["unlabeled", "none of its 60 files is a readable"]),
])
def test_bad_labeled_test_or_unlabeled_data_is_one_line_and_writes_nothing(tmp_path, damage, fragments):
    folder = write_image_folder(tmp_path / "data")
    damage(folder)
    before = _tree_digest(folder)
    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    _single_line_error(code, err, *fragments)
    assert not (tmp_path / "run").exists()
    assert not [p for p in (tmp_path / "cache").glob("*")] if (tmp_path / "cache").exists() else True
    assert _tree_digest(folder) == before


def test_every_unusable_labeled_or_test_file_is_named_in_one_pass_and_skip_bad_prepares_without_them(tmp_path):
    """Ten bad files among good ones: one run names all ten with their reasons and writes nothing; --skip-bad
    leaves them out, lists them beside the manifest and says how many in one line. Files that are not images by
    name are passed over without a word; an image whose extension lies is read for what it is."""
    folder = write_image_folder(tmp_path / "data", labeled_per_class=8)
    labeled, png = folder / "labeled", (folder / "labeled" / "cat" / "cat0.png").read_bytes()
    bad = {"cat/cat2.png": png[:60], "cat/cat3.jpg": b"", "cat/cat4.png": b"not an image",
           "dog/dog2.png": b"GIF89a", "dog/dog3.jpg": (labeled / "dog" / "dog3.jpg").read_bytes()[:100],
           "dog/photo.heic": b"\x00\x00\x00\x18ftypheic" + bytes(40), "frog/frog2.webp": b"RIFF\x00\x00WEBPVP8 "}
    for name, content in bad.items():
        (labeled / name).write_bytes(content)
    (labeled / "frog" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (labeled / "frog" / "loop.jpg").symlink_to(labeled / "frog" / "loop.jpg")
    (folder / "test" / "dog" / "t1.png").write_bytes(png[:30])
    (labeled / "dog" / "really-a-png.heic").write_bytes(png)  # read for what it is
    with open(os.fsencode(folder / "unlabeled") + b"/caf\xe9.png", "wb") as latin1:  # a name from another system
        latin1.write(png)
    for name in (".DS_Store", "Thumbs.db", "cat0.xmp"):
        (labeled / "cat" / name).write_text("not an image")
    named = [*bad, "frog/gone.png", "frog/loop.jpg"]
    before = _tree_digest(folder)

    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    assert code == 2 and "Traceback" not in err, err
    assert "\nsgan: error: 10 labeled or test files cannot be used, so nothing was prepared" in err, err
    for name in named:
        assert f"{labeled / name}: " in err, (name, err)
    assert f"{folder / 'test' / 'dog' / 't1.png'}: " in err and "an empty file (0 bytes)" in err
    assert "really-a-png" not in err and "DS_Store" not in err and "Thumbs" not in err and ".xmp" not in err
    assert not (tmp_path / "run").exists() and not list((tmp_path / "cache").glob("*"))
    assert _tree_digest(folder) == before

    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", "--skip-bad",
                          cache=tmp_path / "cache")
    assert code == 0, err
    assert "left out 9 labeled, 1 test, 1 unlabeled files that cannot be used (listed in skipped.json)" in out, out
    skipped = json.loads((tmp_path / "run" / "skipped.json").read_text())
    assert sorted(s["file"] for s in skipped if s["part"] == "labeled") == sorted(f"labeled/{n}" for n in named)
    assert all(s["reason"] for s in skipped)
    assert [s["reason"] for s in skipped if s["part"] == "unlabeled"] == ["its name is not valid UTF-8: rename it"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["labels"] == 3 * 8 - 5 + 1 and manifest["dataset"]["test_size"] == 3 * 3 - 1
    assert _tree_digest(folder) == before

    code, _, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run2", cache=tmp_path / "cache")
    assert code == 2 and "10 labeled or test files cannot be used" in err, err  # the cache made with --skip-bad
    for image in (labeled / "frog").glob("frog*"):
        image.write_bytes(b"")
    code, _, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run3", "--skip-bad",
                        cache=tmp_path / "cache")
    _single_line_error(code, err, f"{labeled / 'frog'}: no usable image is left in this class")


def test_a_folder_mixing_png_jpeg_webp_avif_and_heic_prepares_with_the_same_pixels(tmp_path):
    folder = write_image_folder(tmp_path / "data", labeled_per_class=5, unlabeled=10,
                                formats=("png", "jpg", "webp", "avif", "heic"))
    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["labels"] == 15 and manifest["dataset"]["unlabeled_size"] == 10 and not manifest["dataset"]["skipped"]
    dataset = data.load_for_manifest(manifest)
    from PIL import Image

    for k, name in enumerate(("cat", "dog", "frog")):
        for i, suffix in enumerate(("png", "jpg", "webp", "avif", "heic")):
            decoded = np.asarray(dataset.x_train[5 * k + i], np.float32)[..., 0]
            original = np.asarray(Image.open(folder / "labeled" / name / f"{name}{i}.{suffix}").convert("L"))
            assert decoded.std() > 10  # an image, not a blank
            np.testing.assert_allclose(decoded, original, atol=1)  # as its own decoder reads it


def test_a_prepare_killed_while_decoding_goes_on_from_what_it_had_decoded(tmp_path):
    """SIGKILL in the middle of decoding: no decoding process outlives the command, the next run decodes only the
    rest, and the cache it makes is the one a run that was never killed makes."""
    folder = write_image_folder(tmp_path / "data", labeled_per_class=2, unlabeled=6000, test_per_class=0,
                                size=(32, 32))
    env = {**os.environ, "SGAN_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([SGAN, "prepare", "--data", str(folder), "--run-dir", str(tmp_path / "killed")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not [p for p in (tmp_path / "cache").glob(".*.partial/unlabeled.progress.json")]:
        assert process.poll() is None and time.monotonic() < deadline, "no decoding progress was recorded"
        time.sleep(0.05)
    workers = psutil.Process(process.pid).children(recursive=True)
    process.kill()  # the command alone, as `kill -9 PID` does: its decoding processes must not outlive it
    process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert workers and not alive, alive
    progress = json.loads(next((tmp_path / "cache").glob(".*.partial/unlabeled.progress.json")).read_text())
    assert 0 < len(progress["done"]) * 256 < 6000, progress["done"]  # killed halfway

    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "resumed", cache=tmp_path / "cache")
    assert code == 0, err
    assert f"decoding unlabeled (resumed at {len(progress['done']) * 256})" in err, err
    assert not list((tmp_path / "cache").glob(".*.partial"))
    resumed = data.load_for_manifest(json.loads((tmp_path / "resumed" / "manifest.json").read_text()))
    code, _, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "fresh", cache=tmp_path / "fresh-cache")
    assert code == 0, err
    fresh = data.load_for_manifest(json.loads((tmp_path / "fresh" / "manifest.json").read_text()))
    np.testing.assert_array_equal(np.asarray(resumed.x_train), np.asarray(fresh.x_train))
    np.testing.assert_array_equal(resumed.y_train, fresh.y_train)


def test_a_test_image_that_is_also_in_training_is_reported_as_a_leak(tmp_path):
    folder = write_image_folder(tmp_path / "data")
    (folder / "unlabeled" / "copy.png").write_bytes((folder / "test" / "cat" / "t0.png").read_bytes())
    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["leaks"] == {"test_images_in_labeled": 0, "test_images_in_unlabeled": 1}
    assert "warning: test images also in training: 0 among the labeled, 1 among the unlabeled" in out


def test_partially_labeled_npz_with_class_names(tmp_path):
    y_labeled = np.arange(20) % 4
    path = tmp_path / "mine.npz"
    np.savez(path, x_labeled=synthetic_images(y_labeled, (12, 12, 1)), y_labeled=y_labeled,
             x_unlabeled=synthetic_images(np.arange(50) % 4, (12, 12, 1), seed=2),
             class_names=np.array(["north", "east", "south", "west"]))
    dataset = data.load(path)
    assert dataset.partially_labeled and not dataset.has_test and dataset.class_names == ("north", "east", "south", "west")
    assert len(dataset.x_train) == 70 and (dataset.y_train == UNLABELED).sum() == 50
    np.testing.assert_array_equal(data.labeled_subset(dataset, None, seed=0), np.arange(20))
    np.savez(tmp_path / "bad.npz", x_labeled=synthetic_images(y_labeled, (12, 12, 1)), y_labeled=y_labeled[:5],
             x_unlabeled=synthetic_images(np.arange(5), (12, 12, 1)))
    with pytest.raises(UserError, match=r"bad.npz\[y_labeled\]: needs one label per labeled image \(20\)"):
        data.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("preset, shape", [("seed", (32, 32, 3)), ("improved", (32, 32, 3)), ("seed", (20, 12, 1)),
                                           ("improved", (20, 12, 1))])
def test_both_presets_train_and_export_other_shapes(tmp_path, preset, shape):
    """RGB 32x32 (the SVHN/CIFAR shape of the published results) and a non-square size divisible by 4."""
    from deploy.export import export_run
    from deploy.runtime import Classifier
    from sgan import atomic
    from sgan.config import preset as named
    from sgan.training.train import train

    folder = write_image_folder(tmp_path / "data", classes=("a", "b"), labeled_per_class=5, unlabeled=30,
                                size=shape[:2], mode="L" if shape[2] == 1 else "RGB")
    dataset = data.load(folder, cache_dir=tmp_path / "cache")
    assert dataset.image_shape == shape
    labeled = data.labeled_subset(dataset, None, seed=0)
    atomic.write_json(tmp_path / "run" / "manifest.json", data.manifest(dataset, labeled, seed=0))
    config = named(preset, iterations=4, batch_size=10, z_dim=8, checkpoint_every=4, eval_every=4, log_every=2)
    train(config, dataset, labeled, tmp_path / "run")
    report = export_run(tmp_path / "run", calibration_size=20)  # reloads the data from the manifest's cache
    assert report["float"]["parity"]["max_abs_diff"] <= 1e-5
    classifier = Classifier(tmp_path / "run" / "model.onnx")
    assert classifier.image_shape == shape and classifier.class_names == ["a", "b"]
    assert classifier.predict(np.asarray(dataset.x_test[:3])).probabilities.shape == (3, 2)


@pytest.fixture(scope="module")
def unevaluated_flow(tmp_path_factory, prefect_api):
    """The Prefect flow on an image folder without a test set: a gate the user sets refuses, the default publishes
    with a warning."""
    tmp = tmp_path_factory.mktemp("user-flow")
    folder = write_image_folder(tmp / "data", test_per_class=0)
    env = flow_env(tmp / "prefect-home", SGAN_CACHE_DIR=str(tmp / "cache"), PREFECT_API_URL=prefect_api)
    runs = []
    for gate in (["--accuracy-gate", "0.5"], []):
        command = [SGAN, "pipeline", "--data", str(folder), "--workers", "1",
                   "--iterations", "12", "--batch-size", "6", "--output-root", str(tmp / "out"), *gate]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        runs.append((result.returncode, result.stdout + result.stderr))
    return tmp, runs


def test_flow_without_a_test_set_says_so_and_publishes_with_a_warning_unless_a_gate_is_set(unevaluated_flow):
    tmp, ((code, output), (code0, output0)) = unevaluated_flow
    assert code == 3, output[-4000:]  # published, not promoted: an outcome, not an error
    assert "no test set: the model will be trained and exported, but it is unevaluated" in output
    assert "no test set, so the accuracy gate 50.00% cannot be checked" in output
    models = tmp / "out" / "models"
    card = (models / "v0001" / "MODEL_CARD.md").read_text()
    assert "**Unevaluated**" in card and "| test accuracy | not measured |" in card and "cat, dog, frog" in card
    assert code0 == 0, output0[-4000:]
    assert "warning: no test set, so v0002 is promoted unevaluated (its accuracy is unknown)" in output0
    assert "test accuracy n/a (no test set)" in output0
    assert os.readlink(models / "latest") == "v0002"


@pytest.mark.parametrize("counts, promoted", [((40, 12), True), ((20, 12), True), ((12, 40), False)])
def test_own_data_is_promoted_unless_significantly_worse_than_its_baseline(unevaluated_flow, tmp_path, counts,
                                                                           promoted):
    """The default gate on an image folder with nothing in production: promoted, unless significantly fewer test
    images are right than with the supervised-only baseline (McNemar's exact test, p < 0.05: something is wrong);
    a gate the user sets is an absolute accuracy as on MNIST."""
    from deploy.publish import GateFailed, publish

    tmp, _ = unevaluated_flow
    run = _copy_of_the_run(tmp, tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({
        **metrics, "test_accuracy": 0.5, "baseline_test_accuracy": 0.4, "per_class_accuracy": [0.5] * 3,
        "test_size": 100, "against_baseline": {"sgan_only": counts[0], "baseline_only": counts[1]}}))
    with pytest.raises(GateFailed, match="test accuracy 50.00% is below the gate 60.00%"):
        publish(run, tmp_path / "models", accuracy_gate=0.6)
    if promoted:
        assert publish(run, tmp_path / "models").name == "v0002"
        assert os.readlink(tmp_path / "models" / "latest") == "v0002"
        said = "significant (McNemar p < 0.001" if counts == (40, 12) else "not significant (McNemar p = 0.215"
        assert said in (tmp_path / "models" / "v0002" / "MODEL_CARD.md").read_text()
    else:
        with pytest.raises(GateFailed, match=r"significantly less accurate than its supervised-only baseline: the "
                                             r"unlabeled images added 10.0 points .* \(McNemar p < 0.001 on 100"):
            publish(run, tmp_path / "models")
        assert not (tmp_path / "models" / "latest").exists()


def _copy_of_the_run(tmp: Path, into: Path) -> Path:
    run = max((tmp / "out" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    copy = into / "run"
    copy.mkdir()
    for name in ("metrics.json", "manifest.json", "onnx_report.json", "config.json", "model.onnx"):
        (copy / name).write_bytes((run / name).read_bytes())
    return copy


def test_class_names_reach_the_onnx_model_and_predict(unevaluated_flow, tmp_path):
    from deploy.runtime import Classifier

    tmp, _ = unevaluated_flow
    model = tmp / "out" / "models" / "latest" / "model.onnx"
    assert Classifier(model).class_names == ["cat", "dog", "frog"]
    metrics = json.loads((tmp / "out" / "models" / "latest" / "metrics.json").read_text())
    assert metrics["class_names"] == ["cat", "dog", "frog"] and metrics["evaluated"] is False

    folder = tmp / "data" / "unlabeled"
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    csv_path = tmp_path / "guesses.csv"
    code, out, err = sgan("predict", model, folder, "--csv", csv_path, "--uncertain", "5", cache=tmp / "cache")
    (folder / "broken.png").unlink()
    assert code == 0, err
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "path,label,probability,entropy" and len(rows) == 61
    assert {row.split(",")[1] for row in rows[1:]} <= {"cat", "dog", "frog"}
    assert "skipped 1 unreadable files" in err and "the 5 images the model is least sure about" in out
    listed = [line.strip().split(":")[0] for line in out.splitlines() if line.startswith("  ")]
    entropy = {row.split(",")[0]: float(row.split(",")[3]) for row in rows[1:]}
    assert len(listed) == 5 and min(entropy[p] for p in listed) >= sorted(entropy.values())[-5]
    grid = Image.open(tmp_path / "guesses.uncertain.png")
    assert grid.size == (8 * 96, 96 + 14)


def test_the_flow_suggests_what_to_label_next(unevaluated_flow):
    tmp, _ = unevaluated_flow
    run = max((tmp / "out" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    rows = (run / "predictions.csv").read_text().splitlines()
    assert len(rows) == 61 and rows[1].startswith("unlabeled/")
    assert Image.open(run / "to_label.png").size[0] == 8 * 96


def test_a_leaking_test_set_blocks_the_gate_unless_allowed(unevaluated_flow, tmp_path):
    from deploy.publish import GateFailed, publish

    tmp, _ = unevaluated_flow
    leaky = _copy_of_the_run(tmp, tmp_path)
    manifest = json.loads((leaky / "manifest.json").read_text())
    manifest["leaks"] = {"test_images_in_labeled": 2, "test_images_in_unlabeled": 1}
    (leaky / "manifest.json").write_text(json.dumps(manifest))
    metrics = json.loads((leaky / "metrics.json").read_text())
    (leaky / "metrics.json").write_text(json.dumps({**metrics, "test_accuracy": 0.95, "per_class_accuracy": [1, 1, 1]}))
    with pytest.raises(GateFailed, match="3 test images also appear in the training data"):
        publish(leaky, tmp_path / "models", accuracy_gate=0.9)
    assert not (tmp_path / "models" / "latest").exists()
    assert "**Warning**: 3 test images" in (tmp_path / "models" / "v0001" / "MODEL_CARD.md").read_text()
    assert publish(leaky, tmp_path / "models", accuracy_gate=0.9, allow_test_leaks=True).name == "v0002"
    assert os.readlink(tmp_path / "models" / "latest") == "v0002"


def test_own_data_trains_for_a_time_budget_unless_a_count_is_given(tmp_path):
    """Without --iterations, `sgan train` on an image folder trains for about 15 minutes and says so up front."""
    from sgan.config import OWN_DATA_TIME_BUDGET

    folder = write_image_folder(tmp_path / "data")
    code, _, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", cache=tmp_path / "cache")
    assert code == 0, err
    env = {**os.environ, "SGAN_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    trainer = subprocess.Popen([SGAN, "train", "--run-dir", str(tmp_path / "run")], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        said = trainer.stdout.readline()
        assert said == ("your own images: training for about 15 minutes (--time-budget SECONDS or --iterations COUNT "
                        "to change it)\n")
        config = tmp_path / "run" / "config.json"
        for _ in range(600):
            if config.exists():
                break
            time.sleep(0.1)
        assert json.loads(config.read_text())["time_budget"] == OWN_DATA_TIME_BUDGET == 900
    finally:
        trainer.kill()
        trainer.wait()
    code, out, err = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "counted", cache=tmp_path / "cache")
    code, out, err = sgan("train", "--run-dir", tmp_path / "counted", "--iterations", 2, "--batch-size", 6,
                          cache=tmp_path / "cache")
    assert code == 0, err
    assert "training for about" not in out
    assert json.loads((tmp_path / "counted" / "config.json").read_text())["time_budget"] == 0
