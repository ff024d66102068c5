"""What each pseudo-label lever does on photos, separated from the noise: the `improved` preset on the CIFAR-10
subset's arrays with 250 labels (25 a class, drawn with seed 0), 1,000 of the other training images held out as
validation (their labels known), ITERATIONS iterations a run, 1 worker; compared pairwise on the same validation
images. The test images are not read: they are for the final choice alone.

    python benchmarks/photo_levers.py --levers fixed adaptive --seeds 0 1 [--iterations 1500]
    python benchmarks/photo_levers.py --compare fixed adaptive      # pairs the recorded runs seed by seed
    python benchmarks/photo_levers.py --table supervised fixed      # docs/benchmarks.md's rows, paired with these

One JSON line per run, appended to benchmarks/results/photo_levers_runs.jsonl as it ends: validation accuracy, what
the pseudo-labels taught (the share of unlabeled batches that taught, over the run and at its end; on the
validation images, the share that would teach and how often those and the rest are right), the training time, and
which validation images it got right (a string of 0/1, for the pairwise comparison). A lever, seed and iteration
count already recorded there is skipped.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from photos import DATA, commit, cpu, pseudo_label_signal, record  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "photo_levers_runs.jsonl"
LABELS, VALIDATION = 250, 1000
DIGITS = {"pseudo_label_mask": "threshold", "unsupervised_weight": 1.0}  # the settings digits keep
LEVERS = {  # name: the settings it changes on the improved preset (photos: conv-gap, the photo views)
    "supervised": {"gan": False, "pseudo_label_weight": 0.0},  # the labeled images alone: the baseline
    "fixed": DIGITS,  # FixMatch's threshold at the preset's 0.98, the real/fake term at full weight
    "adaptive": {**DIGITS, "pseudo_label_mask": "adaptive"},  # FreeMatch
    "soft-aligned": {**DIGITS, "pseudo_label_mask": "soft", "distribution_alignment": True},  # SoftMatch as published
    "adaptive-aligned": {**DIGITS, "pseudo_label_mask": "adaptive", "distribution_alignment": True},
    "adaptive-no-gan": {"pseudo_label_mask": "adaptive", "gan": False},
    "adaptive-gan-0.3": {"pseudo_label_mask": "adaptive", "unsupervised_weight": 0.3},  # a smaller real/fake term:
    # the photo default (sgan.config.AUTO)
    "adaptive-gan-ramp": {**DIGITS, "pseudo_label_mask": "adaptive", "unsupervised_rampup": 1000},  # rising from 0
    "adaptive-randaugment": {**DIGITS, "pseudo_label_mask": "adaptive", "augment": "randaugment"},  # FixMatch's view
    "adaptive-ema-warmup": {**DIGITS, "pseudo_label_mask": "adaptive", "ema_warmup": True},  # no random start
    "adaptive-flip": {**DIGITS, "pseudo_label_mask": "adaptive", "flip_targets": True},  # an image and its mirror
    "adaptive-all": {**DIGITS, "pseudo_label_mask": "adaptive", "unsupervised_rampup": 1000,
                     "augment": "randaugment", "ema_warmup": True, "flip_targets": True},
}


def run(lever: str, seed: int, iterations: int) -> dict:
    from sgan import data
    from sgan.config import preset
    from sgan.evaluation import evaluate
    from sgan.training.train import train

    dataset = data.load(DATA)
    labeled = data.choose_labeled(dataset.y_train, LABELS, dataset.num_classes, seed=0)
    config = preset("improved", iterations=iterations, seed=seed, validation=VALIDATION, eval_every=iterations // 3,
                    **LEVERS[lever])
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        sgan = train(config, dataset, labeled, run_dir)
        train_s = time.perf_counter() - started
        history = evaluate.load_history(run_dir)
    _, validation = data.split_validation(dataset.y_train, labeled, VALIDATION, seed)
    right = evaluate.predict_classes(sgan.classifier, dataset.x_train[validation]) == dataset.y_train[validation]
    return {"validation_accuracy": round(float(right.mean()), 4), "train_s": round(train_s, 1),
            **pseudo_label_signal(history),
            "curve": [{k: round(v, 4) for k, v in r.items() if k in ("step", "validation_accuracy", "pseudo_label_rate")}
                      for r in history if "validation_accuracy" in r],
            "validation_right": "".join("1" if r else "0" for r in right)}


def pairs(a: str, b: str, lines: list):
    """Seed by seed on the same validation images: both runs, the images only one got right, and McNemar's exact
    p."""
    from sgan.evaluation.paired import mcnemar_p

    runs = {(line["lever"], line["seed"], line["iterations"]): line for line in lines}
    for (lever, seed, iterations), line in sorted(runs.items()):
        other = runs.get((b, seed, iterations))
        if lever != a or not other:
            continue
        x, y = (np.array([c == "1" for c in r["validation_right"]]) for r in (line, other))
        only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
        yield line, other, only_a, only_b, mcnemar_p(only_a, only_b)


def compare(a: str, b: str, lines: list):
    for line, other, only_a, only_b, p in pairs(a, b, lines):
        print(json.dumps({"seed": line["seed"], "iterations": line["iterations"], a: line["validation_accuracy"],
                          b: other["validation_accuracy"], f"only_{a}": only_a, f"only_{b}": only_b,
                          "mcnemar_p": round(p, 4)}))


def table(references: list, lines: list):
    """Markdown rows: one a run, then each lever against each reference, seed by seed."""
    def percent(value):
        return "" if value is None else f"{100 * value:.1f}%"

    print("| lever | seed | validation accuracy (by evaluation) | unlabeled batch that taught, mean over the run "
          "| validation images that would teach | their accuracy | accuracy of the rest | training | commit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for line in sorted(lines, key=lambda r: (list(LEVERS).index(r["lever"]), r["seed"])):
        curve = " / ".join(percent(r["validation_accuracy"]) for r in line["curve"])
        print(f"| `{line['lever']}` | {line['seed']} | {curve} | {percent(line.get('pseudo_label_rate_mean'))} "
              f"| {percent(line.get('validation_pseudo_label_rate'))} "
              f"| {percent(line.get('validation_pseudo_label_accuracy'))} "
              f"| {percent(line.get('validation_left_out_accuracy'))} | {line['train_s']:.0f} s | {line['commit']} |")
    print("\n| pair | seed | validation accuracy | right only with the lever | right only with the other | McNemar p |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, reference in enumerate(references):
        for lever in (lever for lever in LEVERS if lever not in references[:k + 1]):
            for line, other, only_a, only_b, p in pairs(lever, reference, lines):
                print(f"| `{lever}` against `{reference}` | {line['seed']} | {percent(line['validation_accuracy'])} "
                      f"against {percent(other['validation_accuracy'])} | {only_a} | {only_b} | {p:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levers", nargs="+", choices=LEVERS, default=list(LEVERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), choices=LEVERS)
    parser.add_argument("--table", nargs="+", metavar="REFERENCE", choices=LEVERS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    lines = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    if args.compare:
        return compare(*args.compare, lines)
    if args.table:
        return table(args.table, lines)
    done = {(line["lever"], line["seed"], line["iterations"]) for line in lines}
    for seed in args.seeds:  # a seed of every lever before the next seed: a cut-short series still pairs
        for lever in args.levers:
            if (lever, seed, args.iterations) in done:
                continue
            line = {"benchmark": "photo_levers", "lever": lever, "settings": LEVERS[lever], "seed": seed,
                    "iterations": args.iterations, "labels": LABELS, "validation": VALIDATION,
                    **run(lever, seed, args.iterations), "cpu": cpu(), "date": time.strftime("%Y-%m-%d"),
                    "commit": commit(), "command": f"python benchmarks/photo_levers.py --levers {lever} --seeds {seed} "
                                                   f"--iterations {args.iterations}"}
            record(line, args.results)


if __name__ == "__main__":
    sys.exit(main())
