"""Test accuracy of a preset with a label budget over several seeds, beside the supervised-only baseline.

    python benchmarks/accuracy.py --preset seed --labels 100 --seeds 0 1 2 [--data ../shared/data/mnist]

Prints one JSON line. Each seed trains from scratch in its own folder under --out (a temporary one by default).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from sgan import data, evaluate  # noqa: E402
from sgan.baseline import train_baseline  # noqa: E402
from sgan.config import preset  # noqa: E402
from sgan.download import download_mnist  # noqa: E402
from sgan.train import train  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def run_seed(dataset, preset_name, labels, seed, iterations, run_dir) -> dict:
    labeled = data.choose_labeled(dataset.y_train, labels, dataset.num_classes, seed)
    config = preset(preset_name, seed=seed, iterations=iterations)
    started = time.perf_counter()
    sgan = train(config, dataset, labeled, run_dir)
    train_s = time.perf_counter() - started
    baseline = train_baseline(config, dataset, labeled)
    return {
        "accuracy": evaluate.accuracy(sgan.discriminator, dataset.x_test, dataset.y_test),
        "baseline_accuracy": evaluate.accuracy(baseline, dataset.x_test, dataset.y_test),
        "train_s": round(train_s, 1),
        "iterations": config.iterations,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, help="override the preset's iterations")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = data.load(args.data or download_mnist())
    out = args.out or Path(tempfile.mkdtemp(prefix="sgan-accuracy-"))
    runs = [run_seed(dataset, args.preset, args.labels, s, args.iterations, out / f"seed-{s}") for s in args.seeds]
    accuracy = np.array([r["accuracy"] for r in runs])
    baseline = np.array([r["baseline_accuracy"] for r in runs])
    print(json.dumps({
        "preset": args.preset,
        "labels": args.labels,
        "seeds": args.seeds,
        "iterations": runs[0]["iterations"],
        "accuracy": [round(a, 4) for a in accuracy],
        "mean": round(float(accuracy.mean()), 4),
        "std": round(float(accuracy.std()), 4),
        "baseline_accuracy": [round(a, 4) for a in baseline],
        "baseline_mean": round(float(baseline.mean()), 4),
        "train_s": [r["train_s"] for r in runs],
        "wall_s": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    sys.exit(main())
