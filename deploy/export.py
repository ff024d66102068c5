"""Export the discriminator's softmax head to ONNX, verify it against TensorFlow, and quantize it to INT8.

Input contract: raw uint8 images [N, H, W, C] (N dynamic); the scaling to [-1, 1] is inside the graph.
Outputs: `probabilities` float32 [N, K] and `class` int64 [N]. Opset 17 (tf2onnx 1.17 supports up to 18;
17 is the newest that every onnxruntime from 1.14 on, and most edge runtimes, execute). Always float32,
whatever precision trained the model.
"""

import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgan import atomic
from sgan.errors import UserError

OPSET = 17
MAX_PROBABILITY_DIFF = 1e-5  # TF vs ONNX, any probability of any test image
MIN_SAME_CLASS = 0.9999  # share of test images whose predicted class agrees
MAX_INT8_DROP = 0.005  # INT8 test accuracy may fall at most 0.5 points below the float model's
MIN_INT8_AGREEMENT = 0.995  # without a test set: share of held images on which INT8 and float agree
NATIVE_CHATTER = re.compile(r"I\d{4} |WARNING: All log messages before absl::InitializeLog\(\) is called")


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    same_class: float

    def check(self):
        if self.max_abs_diff > MAX_PROBABILITY_DIFF or self.same_class < MIN_SAME_CLASS:
            raise UserError(f"ONNX parity check failed: max |p_tf - p_onnx| = {self.max_abs_diff:.2e} "
                            f"(bound {MAX_PROBABILITY_DIFF:.0e}), same class {self.same_class:.4%} "
                            f"(bound {MIN_SAME_CLASS:.2%})")


def classifier_function(discriminator, image_shape):
    """uint8 images -> (probabilities, class), on a float32 copy of the discriminator."""
    import keras
    import tensorflow as tf

    from sgan import data

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    float32 = keras.models.clone_model(discriminator, clone_function=float32_layer)
    float32.set_weights([np.asarray(w, np.float32) for w in discriminator.get_weights()])

    @tf.function(input_signature=[tf.TensorSpec([None, *image_shape], tf.uint8, name="images")])
    def classify(images):
        logits = float32(data.scale(images), training=False)
        probabilities = tf.nn.softmax(logits)
        return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}  # ONNX output names

    return classify


@contextmanager
def _without_native_chatter():
    """TensorFlow's graph optimizer, run inside tf2onnx's conversion, logs info lines through absl straight to file
    descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says. They are held back; anything else written there is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines():
                if not NATIVE_CHATTER.match(line):
                    print(line, file=sys.stderr)


def to_onnx(discriminator, image_shape, metadata: dict):
    """The ONNX classifier (a checked ModelProto) and the tf.function it was converted from."""
    import onnx
    import tf2onnx

    classify = classifier_function(discriminator, image_shape)
    with _without_native_chatter():
        model, _ = tf2onnx.convert.from_function(classify, input_signature=classify.input_signature, opset=OPSET)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.checker.check_model(model, full_check=True)
    return model, classify


def verify(classify, model_bytes: bytes, images: np.ndarray, batch_size: int = 1000) -> Parity:
    """Runs every image through TensorFlow and onnxruntime and compares probabilities and classes."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    worst, same = 0.0, 0
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        expected = classify(batch)
        probabilities, classes = session.run(["probabilities", "class"], {"images": batch})
        worst = max(worst, float(np.abs(probabilities - expected["probabilities"].numpy()).max()))
        same += int(np.sum(classes == expected["class"].numpy()))
    return Parity(worst, same / len(images))


def export_verified(discriminator, image_shape, path, metadata: dict, test_images: np.ndarray) -> Parity:
    """Converts, verifies on `test_images`, and only then writes `path` (atomically)."""
    model, classify = to_onnx(discriminator, image_shape, metadata)
    model_bytes = model.SerializeToString()
    parity = verify(classify, model_bytes, test_images)
    parity.check()
    atomic.write_bytes(path, model_bytes)
    return parity


def export_float(run_dir) -> dict:
    """model.onnx from a trained run, written only after it passed the parity check."""
    import platform

    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from sgan.run import RunDir

    run = RunDir(run_dir)
    manifest, dataset, config = run.manifest(), run.dataset(), run.config()
    metrics = run.read_json("metrics.json", "run `sgan evaluate` first") if (run / "metrics.json").exists() else {}
    metadata = {
        "class_names": list(dataset.class_names),
        "input_shape": list(dataset.image_shape),
        "input_dtype": "uint8",
        "input_range": "0-255, scaled to [-1, 1] inside the graph",
        "training_config": config.to_dict(),
        "labels": manifest["labels"],
        "dataset_sha256": manifest["dataset"]["sha256"],
        "test_accuracy": metrics.get("test_accuracy"),
        "versions": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "opset": OPSET,
    }
    path = run / "model.onnx"
    parity = export_verified(run.model("discriminator"), dataset.image_shape, path, metadata,
                             check_images(dataset, config.seed))
    return {"opset": OPSET, "path": str(path), "bytes": path.stat().st_size,
            "parity": {"max_abs_diff": parity.max_abs_diff, "same_class": parity.same_class,
                       "bounds": {"max_abs_diff": MAX_PROBABILITY_DIFF, "same_class": MIN_SAME_CLASS}}}


def export_int8(run_dir, calibration_size: int = 1000) -> dict:
    """model.int8.onnx from the run's model.onnx, published only within MAX_INT8_DROP of its test accuracy (without
    a test set: only if it agrees with the float model on MIN_INT8_AGREEMENT of held training images)."""
    from deploy.quantize import quantize
    from deploy.runtime import Classifier
    from sgan.run import RunDir

    run = RunDir(run_dir)
    dataset, config = run.dataset(), run.config()
    float_path, int8_path = run / "model.onnx", run / "model.int8.onnx"
    count = min(calibration_size, len(dataset.x_train))
    calibration = dataset.x_train[np.random.default_rng(config.seed).choice(len(dataset.x_train), count, replace=False)]
    int8_bytes = quantize(float_path, calibration)
    float_model, int8_model = Classifier(float_path), Classifier(int8_bytes)
    held = check_images(dataset, config.seed + 1)  # the test set when there is one
    float_classes, int8_classes = float_model.predict(held).classes, int8_model.predict(held).classes
    agreement = float(np.mean(float_classes == int8_classes))
    float_accuracy = int8_accuracy = None
    if dataset.has_test:
        float_accuracy, int8_accuracy = (float(np.mean(c == dataset.y_test)) for c in (float_classes, int8_classes))
        published = float_accuracy - int8_accuracy <= MAX_INT8_DROP
    else:
        published = agreement >= MIN_INT8_AGREEMENT
    if published:
        atomic.write_bytes(int8_path, int8_bytes)
    elif int8_path.exists():
        int8_path.unlink()  # a stale edge model from an earlier export must not outlive its float model
    return {"path": str(int8_path) if published else None, "bytes": len(int8_bytes), "published": published,
            "test_accuracy": int8_accuracy, "float_test_accuracy": float_accuracy, "max_drop": MAX_INT8_DROP,
            "agreement_with_float": agreement}


def export_run(run_dir, calibration_size: int = 1000) -> dict:
    """Both models and onnx_report.json."""
    report = {"float": export_float(run_dir), "int8": export_int8(run_dir, calibration_size)}
    atomic.write_json(Path(run_dir) / "onnx_report.json", report)
    return report


def check_images(dataset, seed: int, count: int = 2000) -> np.ndarray:
    """What parity and INT8 checks run on: the test set, or without one, `count` training images drawn by `seed`."""
    if dataset.has_test:
        return np.asarray(dataset.x_test)
    rows = np.sort(np.random.default_rng([seed, 4]).choice(len(dataset.x_train), min(count, len(dataset.x_train)),
                                                           replace=False))
    return np.asarray(dataset.x_train[rows])

