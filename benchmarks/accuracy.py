"""Test accuracy of a preset over label budgets and seeds, beside the supervised-only baseline.

    python benchmarks/accuracy.py --preset improved --labels 100 --seeds 0 1 2 --curves curves.png
    python benchmarks/accuracy.py --preset improved --labels 20 50 100 1000 --seeds 0 --chart sweep.png
    python benchmarks/accuracy.py --preset improved --iterations 3000 --set gan=false --seeds 0 1 2

Prints one JSON line: per label budget, per-seed test accuracy, mean and std, the baseline's, training wall
time, and the training seconds to reach 95, 97, 98 and 99% on the held-out validation split (the test set is used
once per model, at the end). With several label budgets, --chart draws accuracy against labels as a PNG; --curves draws
each run's validation accuracy against its training time.
Each run trains from scratch in its own folder under --out (a temporary one by default).
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

from sgan import data  # noqa: E402
from sgan.config import preset  # noqa: E402
from sgan.data.download import download_mnist  # noqa: E402
from sgan.evaluation import evaluate  # noqa: E402
from sgan.evaluation.baseline import train_baseline  # noqa: E402
from sgan.training.train import train  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def run_seed(dataset, config, labels, run_dir) -> dict:
    labeled = data.choose_labeled(dataset.y_train, labels, dataset.num_classes, config.seed)
    started = time.perf_counter()
    sgan = train(config, dataset, labeled, run_dir)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    baseline = train_baseline(config, dataset, labeled)
    baseline_s = time.perf_counter() - started
    history = evaluate.load_history(run_dir)
    evaluated = [r for r in history if "validation_accuracy" in r]
    return {
        "accuracy": evaluate.accuracy(sgan.classifier, dataset.x_test, dataset.y_test),
        "baseline_accuracy": evaluate.accuracy(baseline, dataset.x_test, dataset.y_test),
        "train_s": round(train_s, 1),
        "baseline_s": round(baseline_s, 1),
        "seconds_to_validation": evaluate.time_to_accuracy(history),
        "final_validation_accuracy": evaluated[-1]["validation_accuracy"] if evaluated else None,
    }


def summarize(labels: int, runs: list) -> dict:
    accuracy = np.array([r["accuracy"] for r in runs])
    baseline = np.array([r["baseline_accuracy"] for r in runs])
    return {
        "labels": labels,
        "accuracy": [round(a, 4) for a in accuracy],
        "mean": round(float(accuracy.mean()), 4),
        "std": round(float(accuracy.std()), 4),
        "baseline_accuracy": [round(a, 4) for a in baseline],
        "baseline_mean": round(float(baseline.mean()), 4),
        "baseline_std": round(float(baseline.std()), 4),
        "train_s": [r["train_s"] for r in runs],
        "baseline_s": [r["baseline_s"] for r in runs],
        "seconds_to_validation": {m: [r["seconds_to_validation"][m] for r in runs]
                                  for m in runs[0]["seconds_to_validation"]},
        "final_validation_accuracy": [r["final_validation_accuracy"] for r in runs],
    }


def plot_sweep(results: list, title: str, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["labels"] for r in results]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, name in (("", "SGAN"), ("baseline_", "supervised only")):
        ax.errorbar(labels, [100 * r[f"{key}mean"] for r in results], yerr=[100 * r[f"{key}std"] for r in results],
                    marker="o", capsize=3, label=name)
    ax.set(xscale="log", xlabel="labeled examples", ylabel="test accuracy (%)", title=title, xticks=labels)
    ax.set_xticklabels([str(n) for n in labels])
    ax.grid(alpha=0.3)
    ax.legend()
    evaluate.save_figure(fig, path)


def plot_curves(curves: dict, title: str, path: Path):
    """Validation accuracy against training seconds, one line per run: where each run's time went."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, history in curves.items():
        evaluated = [r for r in history if "validation_accuracy" in r]
        ax.plot([r["seconds"] / 60 for r in evaluated], [100 * r["validation_accuracy"] for r in evaluated],
                marker=".", label=name)
    for milestone in evaluate.MILESTONES:
        ax.axhline(100 * milestone, color="grey", lw=0.5, ls=":")
    ax.set(xlabel="training wall time (min)", ylabel="validation accuracy (%)", title=title, ylim=(90, 100))
    ax.grid(alpha=0.3)
    ax.legend()
    evaluate.save_figure(fig, path)


def setting(text: str) -> tuple:
    """NAME=VALUE with VALUE read as JSON where it parses (numbers, true/false), else as a string."""
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--labels", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, help="override the preset's iterations")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", type=setting,
                        help="replace any field of the preset's TrainConfig (VALUE as JSON: 0.98, false)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--chart", type=Path, help="PNG of accuracy against labels (with several --labels)")
    parser.add_argument("--curves", type=Path, help="PNG of validation accuracy against training time, per run")
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = data.load(args.data or download_mnist())
    out = args.out or Path(tempfile.mkdtemp(prefix="sgan-accuracy-"))
    results = []
    for labels in args.labels:
        configs = [preset(args.preset, seed=seed, iterations=args.iterations, **dict(args.set)) for seed in args.seeds]
        runs = [run_seed(dataset, c, labels, out / f"labels-{labels}-seed-{c.seed}") for c in configs]
        results.append(summarize(labels, runs))
    if args.chart:
        plot_sweep(results, f"MNIST, {args.preset} preset, {len(args.seeds)} seed(s)", args.chart)
    if args.curves:
        curves = {f"{labels} labels, seed {seed}": evaluate.load_history(out / f"labels-{labels}-seed-{seed}")
                  for labels in args.labels for seed in args.seeds}
        plot_curves(curves, f"MNIST, {args.preset} preset", args.curves)
    print(json.dumps({
        "preset": args.preset,
        "seeds": args.seeds,
        "iterations": configs[0].iterations,
        "set": dict(args.set),
        "results": results,
        "chart": str(args.chart) if args.chart else None,
        "curves": str(args.curves) if args.curves else None,
        "wall_s": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    sys.exit(main())
