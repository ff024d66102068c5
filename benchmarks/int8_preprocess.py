"""INT8 with and without onnxruntime's pre-processing before quantization: test accuracy and agreement with float.

    python benchmarks/int8_preprocess.py --run-dir RUN

Needs an exported run (model.onnx) with a test set. Calibrates on 1,000 training images drawn as `sgan export`
draws them, quantizes the shipped form (QDQ, signed activations, first convolution float) both ways, and prints
one JSON line, also appended to benchmarks/results/int8_preprocess.jsonl.
"""

import argparse
from pathlib import Path

import numpy as np
from photos import commit, cpu, record

from deploy.quantize import quantize
from deploy.runtime import Classifier
from sgan.run import RunDir

RESULTS = Path(__file__).with_name("results") / "int8_preprocess.jsonl"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    dataset, config = run.dataset(), run.config()
    chosen = np.random.default_rng(config.seed).choice(len(dataset.x_train), 1000, replace=False)
    calibration, x_test, y_test = dataset.x_train[chosen], np.asarray(dataset.x_test), dataset.y_test
    float_classes = Classifier(run / "model.onnx").predict(x_test).classes
    manifest = run.manifest()
    line = {"benchmark": "int8_preprocess", "model": f"{config.iterations} iterations, {manifest['labels']} labels, "
            f"images {manifest['dataset']['image_shape']}", "test_images": len(y_test),
            "float_accuracy": float((float_classes == y_test).mean()),
            "cpu": cpu(), "commit": commit()}
    for name, pre_process in (("without", False), ("with", True)):
        classes = Classifier(quantize(run / "model.onnx", calibration, pre_process=pre_process)).predict(x_test).classes
        line[name] = {"accuracy": float((classes == y_test).mean()),
                      "agreement_with_float": float((classes == float_classes).mean())}
    record(line, RESULTS)


if __name__ == "__main__":
    main()
