"""Data-parallel throughput: 1 vs 2 Horovod workers on the same cores, and fp32 vs bf16 step time.

    python benchmarks/scaling.py [--steps 60] [--data ../shared/data/mnist] [--two-nodes]

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
    import numpy as np
    import tensorflow as tf

    from sgan import data
    from sgan.config import preset
    from sgan.distributed import horovod as distributed
    from sgan.training.train import LABELED_STREAM, UNLABELED_STREAM, build, make_train_step

    dist = distributed.init()
    dataset = data.load(args.data)
    labeled = data.choose_labeled(dataset.y_train, 100, dataset.num_classes, 0)
    config = preset("seed", precision=args.precision)
    sgan = build(config, dataset.image_shape, dataset.num_classes, dist.size)
    dist.broadcast([v.value for v in sgan.variables()])
    step = make_train_step(sgan, config, dist)
    stream = dict(batch_size=config.batch_size, seed=0, rank=dist.rank, size=dist.size)
    labeled_batches = iter(data.batches(dataset.x_train, dataset.y_train, labeled, stream=LABELED_STREAM, **stream))
    everything = np.arange(len(dataset.x_train))
    unlabeled_batches = iter(data.batches(dataset.x_train, None, everything, stream=UNLABELED_STREAM, **stream))

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


def measure(workers: int, precision: str, steps: int, data: Path, nodes=None) -> dict:
    """One horovodrun job; with `nodes` (tests/nodes.py), one worker on each simulated node, launched from node1."""
    horovodrun = Path(sys.executable).with_name("horovodrun")
    command = [str(horovodrun), "-np", str(workers), "--gloo"]
    worker = [sys.executable, __file__, "--worker", "--precision", precision, "--steps", str(steps), "--data", str(data)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if nodes is None:
        output = subprocess.run(command + worker, capture_output=True, text=True, check=True, env=env).stdout
    else:
        command += ["-H", ",".join(f"{n}:1" for n in nodes.names), "--ssh-port", str(nodes.ssh_port),
                    "--ssh-identity-file", str(nodes.key)]
        process = nodes.run_on("node1", command + worker, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**nodes.env(), "TF_CPP_MIN_LOG_LEVEL": "3"})
        output = process.communicate(timeout=900)[0]
    line = next(line for line in output.splitlines() if "RESULT " in line)
    return json.loads(line.split("RESULT ", 1)[1])


def two_node_figure(steps: int, data: Path) -> dict:
    """2 workers on the two simulated nodes of the tests (network namespaces on this machine, so they still share
    its cores), talking over a bridge instead of loopback."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import nodes as simulated

    if reason := simulated.unavailable():
        return {"skipped": reason}
    with tempfile.TemporaryDirectory() as root, simulated.two_nodes(Path(root)) as cluster:
        return measure(2, "fp32", steps, data, cluster)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--bf16-steps", type=int, default=30, help="bf16 is slow on CPUs without bf16 units")
    parser.add_argument("--repeats", type=int, default=3, help="1-vs-2-worker pairs (the median ratio is reported)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--two-nodes", action="store_true", help="also 2 workers on two simulated nodes (root)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    # The machine's speed drifts between runs (1-worker throughput varied by 30% here): pairs run back to back,
    # and the median of their ratios is reported with every ratio.
    pairs = [(measure(1, "fp32", args.steps, args.data), measure(2, "fp32", args.steps, args.data))
             for _ in range(args.repeats)]
    ratios = sorted(two["images_per_s"] / one["images_per_s"] for one, two in pairs)
    one, two = sorted(pairs, key=lambda p: p[1]["images_per_s"] / p[0]["images_per_s"])[len(pairs) // 2]
    bf16 = measure(1, "bf16", args.bf16_steps, args.data)
    fp32 = measure(1, "fp32", args.bf16_steps, args.data)  # beside the bf16 run, same length
    nodes = two_node_figure(args.steps, args.data) if args.two_nodes else {}
    print(json.dumps({
        "cores": os.cpu_count(),
        "batch_per_worker": 32,
        "images_per_s_1_worker": round(one["images_per_s"], 1),
        "images_per_s_2_workers": round(two["images_per_s"], 1),
        "ratio_2_to_1": round(two["images_per_s"] / one["images_per_s"], 3),
        "ratios_2_to_1": [round(r, 3) for r in ratios],
        "step_ms_fp32": round(fp32["step_ms"], 1),
        "step_ms_bf16": round(bf16["step_ms"], 1),
        "bf16_speedup": round(fp32["step_ms"] / bf16["step_ms"], 3),
        **({"images_per_s_2_simulated_nodes": round(nodes["images_per_s"], 1),
            "ratio_2_nodes_to_1_worker": round(nodes["images_per_s"] / one["images_per_s"], 3)}
           if "images_per_s" in nodes else {"two_nodes": nodes.get("skipped", "not run (--two-nodes)")}),
    }))


if __name__ == "__main__":
    sys.exit(main())
