"""The supervised-only baseline's accuracy against its number of steps, to choose `sgan.evaluation.baseline.STEPS` on validation.

    python benchmarks/baseline_steps.py --steps 1000 2500 --seeds 0 1

Prints one JSON line: per step count and seed, the held-out validation accuracy (what decides), the test accuracy
(recorded, not used to choose) and the seconds. Each count is trained with its own full learning-rate schedule.
"""

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sgan import data  # noqa: E402
from sgan.config import preset  # noqa: E402
from sgan.evaluation import baseline, evaluate  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 2500])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=50, help="the main job's per-worker batch")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    dataset = data.load(args.data)
    results = []
    for seed in args.seeds:
        config = preset("improved", seed=seed, batch_size=args.batch_size)
        labeled = data.choose_labeled(dataset.y_train, args.labels, dataset.num_classes, seed)
        _, validation = data.split_validation(dataset.y_train, labeled, config.validation, seed)
        for steps in args.steps:
            baseline.STEPS = steps  # the cap, so that each count below it is trained as given
            started = time.perf_counter()
            model = baseline.train_baseline(replace(config, iterations=steps), dataset, labeled)
            results.append({
                "seed": seed, "steps": steps, "seconds": round(time.perf_counter() - started, 1),
                "validation_accuracy": evaluate.accuracy(model, dataset.x_train[validation],
                                                         dataset.y_train[validation]),
                "test_accuracy": evaluate.accuracy(model, dataset.x_test, dataset.y_test),
            })
    print(json.dumps({"labels": args.labels, "batch_size": args.batch_size, "results": results}))


if __name__ == "__main__":
    main()
