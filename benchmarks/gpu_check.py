"""On a machine with GPUs: one Horovod worker per GPU, each reporting the GPU it took, where its weights live, the
precision `auto` chose and the float16 loss scale after the timed steps, and the training step's rate.

    python benchmarks/gpu_check.py [--steps 50] [--batch-size 50]

Prints one JSON line; with GPUs it is also appended to benchmarks/results/gpu_check.jsonl. Without a GPU it says so
and exits 0: there is nothing to check on such a machine.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from photos import commit, cpu, record

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.jsonl"
SHAPE, CLASSES = (28, 28, 1), 10  # the main job's digits


def worker(args):
    import numpy as np
    import tensorflow as tf

    from sgan import data
    from sgan.config import for_images, preset
    from sgan.distributed import horovod as distributed
    from sgan.models import precision
    from sgan.training.train import INIT_SIZE, build, make_train_step

    dist = distributed.init()  # takes this worker's GPU before anything is placed
    batch = args.batch_size
    config = for_images(preset("improved", batch_size=batch, precision="auto"), SHAPE)
    rng = np.random.default_rng(dist.rank)
    images = rng.integers(0, 256, (max(INIT_SIZE, 2 * batch), *SHAPE), dtype=np.uint8)
    sgan = build(config, SHAPE, CLASSES, dist.size, data.scale(images[:INIT_SIZE]) if config.data_init else None)
    dist.broadcast([v.value for v in sgan.variables()])
    step = make_train_step(sgan, config, dist)
    inputs = (data.scale(images[:batch]), tf.constant(rng.integers(0, CLASSES, batch)),
              data.scale(images[batch:2 * batch]))

    def run(count, start=0):
        for t in range(start, start + count):
            out = step(*inputs, tf.constant(t, tf.int64))
        float(next(iter(out.values())))  # waits for the last step

    run(args.warmup)
    started = time.perf_counter()
    run(args.steps, args.warmup)
    seconds = time.perf_counter() - started
    optimizer = next(iter(sgan.optimizers.values()))
    scale = getattr(optimizer, "dynamic_scale", None)
    report = {"rank": dist.rank, "local_rank": dist.local_rank, "device": dist.device,
              "visible_gpus": [d.name for d in tf.config.get_visible_devices("GPU")],
              "weights_on": next(iter(sgan.models().values())).variables[0].value.device,
              "precision": precision.resolve("auto"), "policy": precision.policy("auto").name,
              "loss_scale": None if scale is None else float(scale), "iterations_per_s": args.steps / seconds}
    Path(args.out, f"worker-{dist.rank}.json").write_text(json.dumps(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=50, help="images per worker (the main job's 50)")
    parser.add_argument("--results", default=str(RESULTS), help="the JSON lines file the line is appended to")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    line = {"benchmark": "gpu_check", "commit": commit(), "cpu": cpu(), "gpus": gpus, "batch_size": args.batch_size}
    if not gpus:
        print(json.dumps({**line, "checked": False, "note": "no GPU on this machine: nothing to check"}))
        return 0
    with tempfile.TemporaryDirectory() as out:
        horovodrun = Path(sys.executable).with_name("horovodrun")
        command = ([str(horovodrun), "-np", str(gpus)] if gpus > 1 else []) + [
            sys.executable, __file__, "--worker", "--out", out, "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--batch-size", str(args.batch_size)]
        subprocess.run(command, check=True)
        workers = [json.loads(p.read_text()) for p in sorted(Path(out).glob("worker-*.json"))]
    line.update(checked=True, workers=sorted(workers, key=lambda w: w["rank"]),
                one_gpu_each=len({w["device"] for w in workers}) == len(workers) == gpus)
    record(line, Path(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
