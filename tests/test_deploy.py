"""ONNX export, parity, INT8 quantization, the TensorFlow-free runtime and `sgan predict`."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image
from test_cli import sgan

from deploy import export
from deploy.runtime import Classifier, InputError
import sgan.images as _heic  # noqa: F401 - registers HEIC with Pillow, for writing too
from sgan.data import idx
from sgan.errors import UserError


def test_export_passes_checker_and_parity(exported_run):
    run, report, _ = exported_run
    model = onnx.load(str(run / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == export.OPSET
    assert report["float"]["parity"]["max_abs_diff"] <= 1e-5 and report["float"]["parity"]["same_class"] >= 0.9999
    assert {t.elem_type for t in (i.type.tensor_type for i in model.graph.input)} == {onnx.TensorProto.UINT8}
    initializers = {t.data_type for t in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 not in initializers and onnx.TensorProto.BFLOAT16 not in initializers


def test_improved_preset_run_exports_with_parity(idx_dir, tmp_path):
    """The improved preset's saved model (custom weight-normalised layers, averaged weights) reloads and exports."""
    from sgan import atomic, data
    from sgan.config import preset
    from sgan.training.train import train

    dataset = data.load(idx_dir)
    labeled = data.choose_labeled(dataset.y_train, 20, 10, seed=0)
    atomic.write_json(tmp_path / "manifest.json", data.manifest(dataset, labeled, seed=0))
    train(preset("improved", iterations=20, batch_size=10, z_dim=16, validation=0), dataset, labeled, tmp_path)
    report = export.export_float(tmp_path)
    assert report["parity"]["max_abs_diff"] <= 1e-5 and report["parity"]["same_class"] >= 0.9999
    assert Classifier(tmp_path / "model.onnx").predict(dataset.x_test[:3]).probabilities.shape == (3, 10)


def test_metadata_round_trip(exported_run):
    run, report, dataset = exported_run
    classifier = Classifier(run / "model.onnx")
    meta = classifier.metadata
    assert meta["input_shape"] == [28, 28, 1] and meta["input_dtype"] == "uint8"
    assert meta["class_names"] == [str(k) for k in range(10)]
    assert meta["dataset_sha256"] == dataset.checksums
    assert meta["training_config"] == json.loads((run / "config.json").read_text())
    assert set(meta["versions"]) >= {"tensorflow", "tf2onnx", "onnx", "onnxruntime"}


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_dynamic_batch_sizes(exported_run, batch):
    run, _, dataset = exported_run
    images = np.resize(dataset.x_test, (batch, 28, 28, 1))
    prediction = Classifier(run / "model.onnx", max_batch=100).predict(images)
    assert prediction.probabilities.shape == (batch, 10) and prediction.classes.shape == (batch,)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(prediction.classes, prediction.probabilities.argmax(axis=1))


def test_int8_model_is_smaller_and_published_only_within_the_bound(exported_run):
    run, report, _ = exported_run
    int8 = report["int8"]
    assert int8["bytes"] < report["float"]["bytes"] / 2
    assert int8["published"] == (int8["float_test_accuracy"] - int8["test_accuracy"] <= export.MAX_INT8_DROP)
    assert (run / "model.int8.onnx").exists() == int8["published"]


def test_int8_model_beyond_the_bound_is_refused(exported_run, monkeypatch, tmp_path):
    import shutil

    run, _, _ = exported_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "model.int8.onnx").write_bytes(b"stale")
    monkeypatch.setattr(export, "MAX_INT8_DROP", -1.0)  # no model can meet this
    report = export.export_run(copy, calibration_size=50)
    assert report["int8"]["published"] is False and not (copy / "model.int8.onnx").exists()


def test_parity_bound_violation_is_an_error():
    with pytest.raises(UserError, match="ONNX parity check failed"):
        export.Parity(max_abs_diff=1e-3, same_class=1.0).check()
    with pytest.raises(UserError, match="same class 99.9000%"):
        export.Parity(max_abs_diff=0.0, same_class=0.999).check()


def test_runtime_rejects_wrong_shapes_and_dtypes(exported_run):
    run, _, _ = exported_run
    classifier = Classifier(run / "model.onnx")
    with pytest.raises(InputError, match=r"must have shape \[N, 28, 28, 1\], got \[2, 32, 32, 1\]"):
        classifier.predict(np.zeros((2, 32, 32, 1), np.uint8))
    with pytest.raises(InputError, match="must be uint8 \\(0-255\\), got float32"):
        classifier.predict(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(InputError, match="must be a numpy array, got list"):
        classifier.predict([[0]])
    assert classifier.predict(np.zeros((3, 28, 28), np.uint8)).classes.shape == (3,)  # [N, H, W] for 1 channel


def test_runtime_rejects_files_that_are_not_sgan_models(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(UserError, match="junk.onnx: not a loadable ONNX model"):
        Classifier(tmp_path / "junk.onnx")


def test_runtime_never_imports_tensorflow(exported_run):
    run, _, _ = exported_run
    code = (
        "import sys, numpy as np\n"
        "from deploy.runtime import Classifier\n"
        f"p = Classifier({str(run / 'model.onnx')!r}).predict(np.zeros((2, 28, 28, 1), np.uint8))\n"
        "assert p.classes.shape == (2,)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_predict_cli_reads_png_npy_and_idx(exported_run, tmp_path):
    run, _, dataset = exported_run
    Image.fromarray(dataset.x_test[0, :, :, 0]).save(tmp_path / "one.png")
    np.save(tmp_path / "three.npy", dataset.x_test[:3])
    (tmp_path / "two.idx").write_bytes(idx.encode(dataset.x_test[:2, :, :, 0]))
    result = sgan("predict", run / "model.onnx", tmp_path / "one.png", tmp_path / "three.npy", tmp_path / "two.idx",
                  "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["one.png", "three.npy[0]", "three.npy[1]", "three.npy[2]",
                                                             "two.idx[0]", "two.idx[1]"]
    expected = Classifier(run / "model.onnx").predict(dataset.x_test[:3]).classes.tolist()
    assert [r["class"] for r in rows[1:4]] == expected and rows[0]["class"] == expected[0]

    text = sgan("predict", run / "model.onnx", tmp_path / "one.png")
    assert text.returncode == 0 and text.stdout.startswith(f"{tmp_path / 'one.png'}: {expected[0]} (")

    for suffix, options in (("webp", {"lossless": True}), ("heic", {"quality": 100}), ("avif", {"quality": 100})):
        Image.fromarray(dataset.x_test[0, :, :, 0]).save(tmp_path / f"one.{suffix}", **options)
    result = sgan("predict", run / "model.onnx", tmp_path / "one.webp", tmp_path / "one.heic", tmp_path / "one.avif",
                  "--json")
    assert result.returncode == 0 and [r["class"] for r in json.loads(result.stdout)] == [expected[0]] * 3, \
        result.stdout + result.stderr


def test_predict_cli_bad_input_exits_2(exported_run, tmp_path):
    run, _, _ = exported_run
    np.save(tmp_path / "wrong.npy", np.zeros((2, 10, 10), np.uint8))
    result = sgan("predict", run / "model.onnx", tmp_path / "wrong.npy")
    assert result.returncode == 2 and "wrong.npy: images must have shape [N, 28, 28, 1]" in result.stderr
    (tmp_path / "fake.png").write_bytes(b"not a png")
    result = sgan("predict", run / "model.onnx", tmp_path / "fake.png")
    assert result.returncode == 2 and "fake.png: not a readable PNG, JPEG, WebP, AVIF or HEIC image" in result.stderr
