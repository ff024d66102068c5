"""INT8 forms against float: images/s at batch 1 and 1,024, on one thread and on every core, and test accuracy.

    python benchmarks/int8.py --run-dir runs/pipeline/runs/<run> [--seconds 2]

Needs an exported run (model.onnx). Quantizes the float model in each form onnxruntime offers for CPUs (QOperator
or QDQ; unsigned or signed activations; always per-channel signed weights, first convolution float), calibrated
on 1,000 training images as `sgan export` does, and times each with onnxruntime alone (no TensorFlow). Prints one
JSON line: {form: {"accuracy", "t1_b1", "t1_b1024", "tN_b1", "tN_b1024"}} in images/s, N the core count.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType

from deploy.quantize import quantize
from sgan.run import RunDir

FORMS = {"qoperator_u8s8": (QuantFormat.QOperator, QuantType.QUInt8), "qdq_u8s8": (QuantFormat.QDQ, QuantType.QUInt8),
         "qdq_s8s8": (QuantFormat.QDQ, QuantType.QInt8), "qoperator_s8s8": (QuantFormat.QOperator, QuantType.QInt8)}


def images_per_second(session, images, seconds: float) -> float:
    session.run(None, {"images": images})
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {"images": images})
        done += len(images)
    return done / (time.perf_counter() - started)


def measure(model, x, y, seconds: float) -> dict:
    figures = {}
    for threads in (1, os.cpu_count()):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        figures["accuracy"] = float((session.run(["class"], {"images": x})[0] == y).mean())
        for batch in (1, 1024):
            figures[f"t{threads}_b{batch}"] = round(images_per_second(session, x[:batch], seconds))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    dataset = RunDir(args.run_dir).dataset()
    x, y = np.asarray(dataset.x_test[:2048]), dataset.y_test[:2048]
    calibration = np.asarray(dataset.x_train[np.random.default_rng(0).choice(len(dataset.x_train), 1000,
                                                                             replace=False)])
    result = {"cores": os.cpu_count(), "onnxruntime": ort.__version__,
              "float": measure(str(args.run_dir / "model.onnx"), x, y, args.seconds)}
    for name, (form, activations) in FORMS.items():
        model = quantize(args.run_dir / "model.onnx", calibration, form, activations)
        result[name] = measure(model, x, y, args.seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
