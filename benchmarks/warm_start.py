"""Warm start against training from scratch, when new labels arrive for the same classes.

    python benchmarks/warm_start.py --champion runs/pipeline/models --labels 200 --iterations 1000 --workers 2 \
        --batch-size 50 --curves warm_start.png

Trains two runs on the same data, labels and schedule through the `sgan` command, each step in its own process:
one from random weights, one from the weights of `--champion` (a published version, a models root or a run
folder). Prints one JSON line: for each, the test accuracy, the training seconds and the training seconds to reach
95, 97, 98 and 99% on the held-out validation split; and the seconds the warm start needs to reach the accuracy
the scratch run ends with (validation, never the test set). --curves draws both validation curves against time.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SGAN = str(Path(sys.executable).with_name("sgan"))
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def sgan(*args):
    subprocess.run([SGAN, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def run(run_dir: Path, args, warm_start: Path | None) -> dict:
    sgan("prepare", "--data", args.data, "--labels", args.labels, "--seed", args.seed, "--run-dir", run_dir)
    sgan("train", "--run-dir", run_dir, "--iterations", args.iterations, "--workers", args.workers,
         "--batch-size", args.batch_size, "--eval-every", args.eval_every,
         *(["--warm-start", warm_start] if warm_start else []))
    sgan("evaluate", "--run-dir", run_dir, "--no-baseline")
    history = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"test_accuracy": metrics["test_accuracy"], "train_s": history[-1]["seconds"],
            "seconds_to_validation": metrics["seconds_to_validation"],
            "validation": [(r["seconds"], r["validation_accuracy"]) for r in history if "validation_accuracy" in r]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--champion", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--out", type=Path, help="run folders here (default: a temporary folder)")
    parser.add_argument("--curves", type=Path, help="PNG of validation accuracy against training seconds")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch_dir:
        out = args.out or Path(scratch_dir)
        runs = {"scratch": run(out / "scratch", args, None), "warm": run(out / "warm", args, args.champion)}
    target = runs["scratch"]["validation"][-1][1]
    runs["warm"]["seconds_to_scratch_final_validation"] = next(
        (s for s, a in runs["warm"]["validation"] if a >= target), None)
    if args.curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 4))
        for name, result in runs.items():
            seconds, accuracy = zip(*result["validation"])
            axes.plot(seconds, accuracy, marker=".", label=f"{name}: test {result['test_accuracy']:.2%}")
        axes.set(xlabel="training seconds", ylabel="validation accuracy", ylim=(max(0.5, target - 0.2), 1.0),
                 title=f"{args.labels} labels, {args.iterations} iterations")
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.curves, dpi=100)
    print(json.dumps({"labels": args.labels, "iterations": args.iterations, "workers": args.workers,
                      "batch_size": args.batch_size, "champion": str(args.champion), **runs}))


if __name__ == "__main__":
    main()
