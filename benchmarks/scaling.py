"""Data-parallel throughput: 1 vs 2 Horovod workers on the same cores, and fp32 vs bf16 step time.

    python benchmarks/scaling.py [--steps 60] [--data ../shared/data/mnist]

Prints one JSON line. Each configuration is a real `horovodrun --gloo` job timing the real train step
(seed preset, batch 32 per worker) on MNIST after warm-up steps.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def worker(args):
    import tensorflow as tf

    from sgan import data, distributed
    from sgan.config import preset
    from sgan.train import LABELED_STREAM, UNLABELED_STREAM, build, make_train_step

    dist = distributed.init()
    dataset = data.load(args.data)
    labeled = data.choose_labeled(dataset.y_train, 100, dataset.num_classes, 0)
    config = preset("seed", precision=args.precision)
    sgan = build(config, dataset.image_shape, dataset.num_classes, dist.size)
    dist.broadcast([v.value for v in sgan.variables()])
    step = make_train_step(sgan, config, dist)
    stream = dict(batch_size=config.batch_size, seed=0, rank=dist.rank, size=dist.size)
    labeled_batches = iter(data.batches(dataset.x_train, dataset.y_train, labeled, stream=LABELED_STREAM, **stream))
    unlabeled_batches = iter(data.batches(dataset.x_train, None, np.arange(len(dataset.x_train)), stream=UNLABELED_STREAM, **stream))

    def run(first, count):
        for t in range(first, first + count):
            (x, y), (u, _) = next(labeled_batches), next(unlabeled_batches)
            losses = step(x, y, u, tf.constant(t, tf.int64))
        float(losses["generator"])  # wait for the last step

    run(0, args.warmup)
    started = time.perf_counter()
    run(args.warmup, args.steps)
    step_s = (time.perf_counter() - started) / args.steps
    if dist.is_chief:
        # Real images consumed per iteration, all workers together: a labeled and an unlabeled batch each.
        print("RESULT " + json.dumps({"workers": dist.size, "precision": args.precision, "step_ms": step_s * 1000,
                                      "images_per_s": 2 * config.batch_size * dist.size / step_s}), flush=True)


def measure(workers: int, precision: str, steps: int, data: Path) -> dict:
    horovodrun = Path(sys.executable).with_name("horovodrun")
    command = [str(horovodrun), "-np", str(workers), "--gloo", sys.executable, __file__, "--worker",
               "--precision", precision, "--steps", str(steps), "--data", str(data)]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
    line = next(line for line in output.splitlines() if "RESULT " in line)
    return json.loads(line.split("RESULT ", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--bf16-steps", type=int, default=10, help="bf16 is slow on CPUs without bf16 units")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    one = measure(1, "fp32", args.steps, args.data)
    two = measure(2, "fp32", args.steps, args.data)
    bf16 = measure(1, "bf16", args.bf16_steps, args.data)
    print(json.dumps({
        "cores": os.cpu_count(),
        "batch_per_worker": 32,
        "images_per_s_1_worker": round(one["images_per_s"], 1),
        "images_per_s_2_workers": round(two["images_per_s"], 1),
        "ratio_2_to_1": round(two["images_per_s"] / one["images_per_s"], 3),
        "step_ms_fp32": round(one["step_ms"], 1),
        "step_ms_bf16": round(bf16["step_ms"], 1),
        "bf16_speedup": round(one["step_ms"] / bf16["step_ms"], 3),
    }))


if __name__ == "__main__":
    sys.exit(main())
