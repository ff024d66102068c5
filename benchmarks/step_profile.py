"""Where a training step's time goes: the real train step per preset and worker count, with one part left out at a
time, XLA compilation, bf16, the input stream and the allreduce.

    python benchmarks/step_profile.py [--workers 1 2] [--steps 40] [--against REV]

Prints one JSON line and appends it to benchmarks/results/step_profile.jsonl. Every row is a real `horovodrun
--gloo` job (a plain process for 1 worker) timing the step on fixed batches after warm-up steps, with the global
batch of the preset's main job (100; the seed preset's 32 per worker). The variants take turns, 4 rounds, and the
median round counts, so that each sees the machine in each of its states. A part's cost is the full step's time
minus the time without it. The input stream is timed alone (a labeled and an unlabeled batch from
`sgan.data.batches`), as is one grouped allreduce of every trainable variable's gradient. With `--against REV`,
each row is also measured on the code of that revision (a git worktree), alternating with the working tree's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from photos import commit, cpu, record

RESULTS = Path(__file__).resolve().parent / "results" / "step_profile.jsonl"
# (row name, preset, image shape, what is left out); a part only where the preset's model has it.
CASES = {
    "improved digits": ("improved", (28, 28, 1), {
        "full step": {}, "without Gaussian noise": {"input_noise": 0.0, "hidden_noise": 0.0},
        "without pseudo-labels": {"pseudo_label_weight": 0.0}, "without the GAN": {"gan": False},
        "without the averaged D": {"ema_decay": 0.0}, "bf16 mixed precision": {"precision": "bf16"}}),
    "improved photos 32x32": ("improved", (32, 32, 3), {
        "full step": {}, "without pseudo-labels": {"pseudo_label_weight": 0.0}, "without the GAN": {"gan": False},
        "without the averaged D": {"ema_decay": 0.0}}),
    "seed digits": ("seed", (28, 28, 1), {"full step": {}}),
}
GLOBAL_BATCH = {"improved": 100}
ROUNDS = 4


def worker(args):
    import numpy as np
    import tensorflow as tf

    from sgan import data
    from sgan.config import for_images, preset
    from sgan.distributed import horovod as distributed
    from sgan.training.train import INIT_SIZE, build, make_train_step

    dist = distributed.init()
    name, shape, parts = args.case, *CASES[args.case][1:]
    preset_name = CASES[name][0]
    batch = GLOBAL_BATCH[preset_name] // dist.size if preset_name in GLOBAL_BATCH else None
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2000, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, 2000)
    rows = {}

    def timed(step, inputs, count):
        for t in range(count):
            out = step(*inputs, tf.constant(t, tf.int64))
        float(next(iter(out.values())))  # waits for the last step

    variants, steps = {**parts, **({"XLA (jit_compile)": {}} if dist.size == 1 else {})}, {}
    for part, overrides in variants.items():
        config = for_images(preset(preset_name, batch_size=batch, **overrides), shape)
        init = data.scale(images[:INIT_SIZE]) if config.data_init else None
        sgan = build(config, shape, 10, dist.size, init)
        dist.broadcast([v.value for v in sgan.variables()])
        step = make_train_step(sgan, config, dist)
        if part.startswith("XLA"):
            step = tf.function(step.python_function, jit_compile=True)
        b = config.batch_size
        inputs = (data.scale(images[:b]), tf.constant(labels[:b]), data.scale(images[b:2 * b]))
        try:
            timed(step, inputs, args.warmup)
            steps[part] = step, inputs, []
        except tf.errors.InvalidArgumentError as error:  # an op XLA cannot compile
            rows[part] = {"error": str(error).splitlines()[0][:160]}
    # Round robin: every variant sees the machine in each of its states; the median round counts.
    for _ in range(ROUNDS):
        for part, (step, inputs, times) in steps.items():
            started = time.perf_counter()
            timed(step, inputs, args.steps // ROUNDS)
            times.append((time.perf_counter() - started) / (args.steps // ROUNDS) * 1000)
    rows.update({part: {"ms": round(float(np.median(times)), 1)} for part, (_, _, times) in steps.items()})

    config = for_images(preset(preset_name, batch_size=batch), shape)
    stream = dict(batch_size=config.batch_size, seed=0, rank=dist.rank, size=dist.size)
    labeled = iter(data.batches(images, labels, np.arange(100), stream=0, **stream))
    unlabeled = iter(data.batches(images, None, np.arange(len(images)), stream=1, **stream))
    next(labeled), next(unlabeled)
    started = time.perf_counter()
    for _ in range(args.steps):
        next(labeled), next(unlabeled)
    rows["input stream"] = {"ms": round((time.perf_counter() - started) / args.steps * 1000, 1)}
    if dist.size > 1:
        sgan = build(config, shape, 10, dist.size)
        gradients = [tf.zeros_like(v) for v in sgan.discriminator.trainable_variables + sgan.generator.trainable_variables]
        average = tf.function(dist.average)
        average(gradients)
        started = time.perf_counter()
        for _ in range(args.steps):
            average(gradients)
        rows["allreduce of the gradients"] = {"ms": round((time.perf_counter() - started) / args.steps * 1000, 1)}
    if dist.is_chief:
        print("RESULT " + json.dumps({"case": name, "workers": dist.size, "batch_per_worker": config.batch_size,
                                      "rows": rows}), flush=True)


def measure(case: str, workers: int, steps: int, warmup: int, code: Path | None = None) -> dict:
    """One job; `code`: a checkout whose packages it imports instead of the working tree's."""
    command = [sys.executable, __file__, "--worker", "--case", case, "--steps", str(steps), "--warmup", str(warmup)]
    if workers > 1:
        command = [str(Path(sys.executable).with_name("horovodrun")), "-np", str(workers), "--gloo", *command]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **({"PYTHONPATH": str(code)} if code else {})}
    output = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in output.stdout.splitlines() if "RESULT " in line]
    if not lines:
        sys.exit(f"{case} on {workers} worker(s) failed:\n{output.stdout[-2000:]}{output.stderr[-2000:]}")
    return json.loads(lines[0].split("RESULT ", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also measure this revision's code, alternating")
    parser.add_argument("--note", default="", help="what this run measures (recorded with it)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    line = {"machine": cpu(), "commit": commit(), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
            "note": args.note}
    if not args.against:
        line["results"] = [measure(c, w, args.steps, args.warmup) for c in args.cases for w in args.workers]
        return record(line, RESULTS)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as folder:
        old = Path(folder) / "code"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=root, check=True,
                       capture_output=True)
        try:
            pairs = [(measure(c, w, args.steps, args.warmup, old), measure(c, w, args.steps, args.warmup))
                     for c in args.cases for w in args.workers]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=root, capture_output=True)
    line.update(against=args.against, results=[new for _, new in pairs], results_against=[old for old, _ in pairs])
    record(line, RESULTS)

if __name__ == "__main__":
    sys.exit(main())
