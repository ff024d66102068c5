"""What a user with photos gets: real CIFAR-10 photos written as an image folder and run through
`sgan pipeline --data FOLDER` with no other option, as a new user types it.

    python benchmarks/photos.py --labels 250 1000 [--data ../shared/data/cifar10-subset/cifar10_subset.npz]

The folder: `labeled/<class>/` (labels / 10 per class, drawn with seed 0), `unlabeled/` (every other training
image) and `test/<class>/`, as PNG files. For each label count, one JSON line: the flow's test accuracy, its
supervised-only baseline's, logistic regression on the labeled images' raw pixels, whether `latest` moved to the
new model, the flow's wall time, the training iterations the time budget chose, what the pseudo-labels taught
(the fraction of unlabeled images above the threshold, their accuracy on the validation split), the largest
process's peak memory and the CPU. Lines are appended to --results; a label count already recorded there at the
same photo settings (`sgan.config.AUTO`) is skipped.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sgan.config import AUTO

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10-subset" / "cifar10_subset.npz"


def write_folder(arrays, labels: int, out: Path) -> Path:
    """The benchmark's arrays as a user keeps photos; labeled images are drawn class-balanced with seed 0."""
    from PIL import Image

    from sgan.data import choose_labeled

    folder = out / f"cifar-{labels}"
    if (folder / ".complete").exists():
        return folder
    names = [str(n) for n in arrays["class_names"]]
    labeled = set(choose_labeled(arrays["y_train"], labels, len(names), seed=0).tolist())
    for i, (image, k) in enumerate(zip(arrays["x_train"], arrays["y_train"])):
        path = folder / ("labeled/" + names[k] if i in labeled else "unlabeled") / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    for i, (image, k) in enumerate(zip(arrays["x_test"], arrays["y_test"])):
        path = folder / "test" / names[k] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    (folder / ".complete").touch()
    return folder


def pixel_logistic_regression(arrays, labels: int) -> float:
    """Multinomial logistic regression on the standardised raw pixels of the same labeled images (L2 1e-2, 1,000
    full-batch Adam steps): what the pixels alone give."""
    import keras

    from sgan.data import choose_labeled

    chosen = choose_labeled(arrays["y_train"], labels, len(arrays["class_names"]), seed=0)
    x = arrays["x_train"][chosen].reshape(len(chosen), -1).astype("float32")
    mean, std = x.mean(0), x.std(0) + 1e-6
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(
        len(arrays["class_names"]), kernel_regularizer=keras.regularizers.l2(1e-2))])
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((x - mean) / std, arrays["y_train"][chosen], batch_size=len(x), epochs=1000, verbose=0)
    test = (arrays["x_test"].reshape(len(arrays["x_test"]), -1).astype("float32") - mean) / std
    return float(np.mean(model.predict(test, verbose=0).argmax(1) == arrays["y_test"]))


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return platform.processor()


def commit() -> str:
    """HEAD, with `+changes` when the packages differ from it (the code measured is then not that commit's)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    changed = subprocess.run(["git", "status", "--porcelain", "--", "sgan", "deploy", "pipeline", "cli"],
                             capture_output=True, text=True, cwd=ROOT)
    return head.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def record(line: dict, results: Path):
    """Prints the benchmark's JSON line and appends it to `results`."""
    print(json.dumps(line), flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as f:
        f.write(json.dumps(line) + "\n")


def run_flow(folder: Path, out: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(out / "prefect-home"),
           "SGAN_CACHE_DIR": str(out / "cache")}
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).with_name("sgan")), "pipeline", "--data", str(folder),
                             "--output-root", str(out / "pipeline")], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    (out / "pipeline.log").write_text(result.stdout + result.stderr)
    if result.returncode not in (0, 3):  # 3: the model was published but not promoted, which is a result too
        sys.exit(f"sgan pipeline failed (exit {result.returncode}): {out / 'pipeline.log'}")
    summary = {"exit_code": result.returncode, "flow_wall_s": round(wall, 1),
               "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9, 2)}
    runs = sorted((out / "pipeline" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    run = runs[-1]
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    history = json.loads((run / "history.json").read_text())
    latest = out / "pipeline" / "models" / "latest"
    return {**summary, "test_accuracy": metrics["test_accuracy"],
            "baseline_test_accuracy": metrics["baseline_test_accuracy"],
            "against_baseline": metrics["against_baseline"],
            "published_as_latest": latest.is_dir() and (latest / "metrics.json").read_text()
            == (run / "metrics.json").read_text(),
            "iterations": config["iterations"], "architecture": config["architecture"],
            "augment": config["augment"], "pseudo_label_mask": config["pseudo_label_mask"],
            "unsupervised_weight": config["unsupervised_weight"], "train_s": history[-1]["seconds"],
            **pseudo_label_signal(history)}


def pseudo_label_signal(history: list) -> dict:
    """What the unlabeled images taught: the share of unlabeled batches that taught (over the run and at its end),
    the mean confidence at the end, and on the validation split at the last evaluation the share that would teach,
    their accuracy and that of the rest."""
    taught = [r for r in history if "pseudo_label_rate" in r]
    if not taught:
        return {}
    evaluated = [r for r in history if "validation_pseudo_label_rate" in r]
    return {"pseudo_label_rate_mean": round(float(np.mean([r["pseudo_label_rate"] for r in taught])), 4),
            "pseudo_label_rate_last": round(taught[-1]["pseudo_label_rate"], 4),
            "pseudo_label_confidence_last": round(taught[-1]["pseudo_label_confidence"], 4),
            **{k: round(v, 4) for k, v in (evaluated[-1] if evaluated else {}).items()
               if k.startswith(("validation_pseudo", "validation_left_out"))}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sgan-photos"))
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "photos.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    lines = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    done = {line["labels"] for line in lines if line.get("photo_auto") == AUTO["photos"]}  # measured at these settings
    arrays = dict(np.load(args.data, allow_pickle=False))
    for labels in (n for n in args.labels if n not in done):
        out = args.out / f"labels-{labels}"
        folder = write_folder(arrays, labels, args.out)
        line = {"labels": labels, "unlabeled": len(arrays["x_train"]) - labels, "test": len(arrays["x_test"]),
                **run_flow(folder, out), "pixel_logistic_regression": round(pixel_logistic_regression(arrays, labels), 4),
                "photo_auto": AUTO["photos"], "cpu": cpu(), "date": time.strftime("%Y-%m-%d"), "commit": commit(),
                "command": f"python benchmarks/photos.py --labels {labels}"}
        record(line, args.results)


if __name__ == "__main__":
    main()
