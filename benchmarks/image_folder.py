"""Users' data path, measured on real data: MNIST written out as an image folder (100 labeled PNGs under class
names, the other 59,900 training images unlabeled, the 10,000 test images under test/), against the IDX path.

    python benchmarks/image_folder.py --out /tmp/mnist-folder [--iterations 6000] [--workers 2]

Reports how long `sgan prepare` takes on the 70,000 PNG files (cold: hashing and decoding into a fresh cache;
warm: hashing only), and with --iterations > 0 trains the `seed` preset on both paths with the same 100 labeled
images and seed, and reports each test accuracy. Prints one JSON line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_folder(dataset, labeled: np.ndarray, out: Path):
    from PIL import Image

    if (out / ".complete").exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    is_labeled = np.zeros(len(dataset.x_train), bool)
    is_labeled[labeled] = True
    for i, (image, label) in enumerate(zip(dataset.x_train, dataset.y_train)):
        where = out / "labeled" / NAMES[label] if is_labeled[i] else out / "unlabeled" / f"{i // 1000:02d}"
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(where / f"train{i:05d}.png")
    for i, (image, label) in enumerate(zip(dataset.x_test, dataset.y_test)):
        where = out / "test" / NAMES[label]
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(where / f"test{i:05d}.png")
    (out / ".complete").touch()


def sgan(*args, env=None) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from sgan import data

    dataset = data.load(args.mnist)
    labeled = data.choose_labeled(dataset.y_train, 100, 10, seed=0)
    folder = args.out / "folder"
    write_folder(dataset, labeled, folder)
    cache = args.out / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "SGAN_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    figures = {"files": sum(1 for p in folder.rglob("*.png")), "cpus": os.cpu_count()}
    figures["prepare_cold_s"] = sgan("prepare", "--data", folder, "--run-dir", args.out / "folder-run", env=env)
    figures["prepare_warm_s"] = sgan("prepare", "--data", folder, "--run-dir", args.out / "folder-run", env=env)
    figures["prepare_cold_files_per_s"] = round(figures["files"] / figures["prepare_cold_s"], 1)
    figures["prepare_idx_s"] = sgan("prepare", "--data", args.mnist, "--labels", 100, "--run-dir",
                                    args.out / "idx-run", env=env)
    if args.iterations:
        for name in ("idx", "folder"):
            run = args.out / f"{name}-run"
            shutil.rmtree(run / "checkpoints", ignore_errors=True)
            figures[f"{name}_train_s"] = sgan("train", "--run-dir", run, "--iterations", args.iterations,
                                              "--workers", args.workers, "--batch-size", args.batch_size, env=env)
            sgan("evaluate", "--run-dir", run, "--no-baseline", env=env)
            figures[f"{name}_test_accuracy"] = json.loads((run / "metrics.json").read_text())["test_accuracy"]
        figures.update(iterations=args.iterations, workers=args.workers, batch_size=args.batch_size)
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
