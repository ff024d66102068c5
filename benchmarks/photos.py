"""What a user with photos gets: a photo-like folder of camera-sized RGB JPEGs through `sgan prepare`, `sgan train`
and `sgan evaluate` with no options beyond the data, as users type them.

    python benchmarks/photos.py --out /tmp/photos [--iterations 2000] [--classes 3]

The folder: 640x480 JPEGs of a shape per class (ellipse, rectangle, triangle, ...) of random size, position,
colour and rotation on a noisy colour gradient, 10 labeled per class, 300 unlabeled, 20 test per class. Reports the
size `prepare` chose, the SGAN's and the supervised-only baseline's test accuracy, seconds per iteration, the
training process's peak memory and what the memory check estimated. Prints one JSON line.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("ellipse", "rectangle", "triangle", "pentagon", "star", "cross", "ring")


def photo(kind: str, rng: np.random.Generator, size=(640, 480)):
    """One 640x480 RGB picture of `kind` on a noisy gradient background."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = size
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, width)[None, :, None]
    background = (start * (1 - ramp) + end * ramp) * np.ones((height, 1, 1))
    background += rng.normal(0, 20, (height, width, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.15, 0.35) * height
    cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    turn = rng.uniform(0, 2 * math.pi)

    def polygon(points: int, inner: float = 1.0):
        corners = []
        for i in range(points * (2 if inner < 1 else 1)):
            r = radius * (inner if i % 2 and inner < 1 else 1.0)
            angle = turn + i * math.pi / (points if inner < 1 else points / 2)
            corners.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
        return corners

    if kind == "ellipse":
        draw.ellipse([cx - radius, cy - radius * 0.7, cx + radius, cy + radius * 0.7], fill=colour)
    elif kind == "rectangle":
        draw.polygon(polygon(4), fill=colour)
    elif kind == "triangle":
        draw.polygon(polygon(3), fill=colour)
    elif kind == "pentagon":
        draw.polygon(polygon(5), fill=colour)
    elif kind == "star":
        draw.polygon(polygon(5, inner=0.4), fill=colour)
    elif kind == "cross":
        w = radius / 3
        draw.rectangle([cx - radius, cy - w, cx + radius, cy + w], fill=colour)
        draw.rectangle([cx - w, cy - radius, cx + w, cy + radius], fill=colour)
    else:
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=colour, width=int(radius / 3))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))


def write_folder(out: Path, classes: int, labeled: int = 10, unlabeled: int = 300, test: int = 20, seed: int = 0):
    if (out / ".complete").exists():
        return
    rng = np.random.default_rng(seed)
    for part, per_class in (("labeled", labeled), ("test", test)):
        for kind in SHAPES[:classes]:
            (out / part / kind).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                photo(kind, rng).save(out / part / kind / f"{i:03d}.jpg", quality=90)
    (out / "unlabeled").mkdir(parents=True, exist_ok=True)
    for i in range(unlabeled):
        photo(SHAPES[rng.integers(classes)], rng).save(out / "unlabeled" / f"{i:04d}.jpg", quality=90)
    (out / ".complete").touch()


def sgan(*args) -> str:
    result = subprocess.run([str(Path(sys.executable).with_name("sgan")), *map(str, args)], capture_output=True,
                            text=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", **os.environ})
    if result.returncode:
        sys.exit(f"sgan {args[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classes", type=int, default=3, choices=range(2, len(SHAPES) + 1))
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    from sgan import memory
    from sgan.config import DEFAULT_PRESET, preset

    folder, run = args.out / f"photos-{args.classes}", args.out / f"run-{args.classes}-{args.iterations}"
    write_folder(folder, args.classes)
    sgan("prepare", "--data", folder, "--run-dir", run, "--cache-dir", args.out / "cache")
    manifest = json.loads((run / "manifest.json").read_text())
    started = time.perf_counter()
    sgan("train", "--run-dir", run, "--iterations", args.iterations)
    train_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child: training
    sgan("evaluate", "--run-dir", run)
    metrics = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    shape = tuple(manifest["dataset"]["image_shape"])
    config = preset(DEFAULT_PRESET, iterations=args.iterations)
    print(json.dumps({
        "preset": DEFAULT_PRESET, "classes": args.classes, "labeled": manifest["labels"],
        "unlabeled": manifest["dataset"]["unlabeled_size"], "test": manifest["dataset"]["test_size"],
        "image_shape": shape, "architecture": json.loads((run / "config.json").read_text())["architecture"],
        "iterations": args.iterations,
        "test_accuracy": metrics["test_accuracy"], "baseline_test_accuracy": metrics["baseline_test_accuracy"],
        "seconds_per_iteration": round(history[-1]["seconds"] / args.iterations, 4), "train_wall_s": round(train_s, 1),
        "peak_rss_gb": round(peak / 1e9, 2),
        "estimated_gb": round(memory.estimate(config, shape, args.classes)["total"] / 1e9, 2),
    }))


if __name__ == "__main__":
    main()
