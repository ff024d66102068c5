"""How `sgan prepare` grows with the number of unlabeled files: wall time, files per second and the peak memory of
the whole process tree (the command and its decoding processes; resident, and its own memory without the pages
of memory-mapped files), cold (hashing and decoding into a fresh cache),
warm (the same files again: hashing only) and after a kill halfway through a cold run (the time the rerun takes);
then `sgan train` for TRAIN_ITERATIONS iterations on the prepared images (the default preset, one worker), whose
memory must not grow with the number of images.

    python benchmarks/prepare_scale.py --out /tmp/scale --counts 10000 30000 100000

Each folder is generated here (10 classes x 10 labeled, COUNT unlabeled 32x32 JPEGs in folders of 1,000, no test
set) and kept for the next count's run. One JSON line per count, appended to benchmarks/results/prepare_scale.jsonl
as it ends; a count already recorded for this commit is skipped.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import psutil
from photos import commit, cpu, record

RESULTS = Path(__file__).with_name("results") / "prepare_scale.jsonl"
SGAN = str(Path(sys.executable).with_name("sgan"))
TRAIN_ITERATIONS = 20


def _write(job: tuple):
    from PIL import Image

    folder, start, stop = job
    rng = np.random.default_rng(start)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, stop):
        base = rng.integers(0, 256, 3)
        pixels = np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:07d}.jpg", quality=90)


def generate(root: Path, count: int):
    """labeled/<class>/ (10 x 10) and unlabeled/<thousands>/, written on every core; kept once complete."""
    if (root / ".complete").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    jobs = [(root / "labeled" / f"class{k}", 10 * k, 10 * k + 10) for k in range(10)]
    jobs += [(root / "unlabeled" / f"{start // 1000:04d}", 1000 + start, 1000 + min(start + 1000, count))
             for start in range(0, count, 1000)]
    with Pool(os.cpu_count()) as pool:
        pool.map(_write, jobs)
    (root / ".complete").touch()


def prepare(folder: Path, cache: Path, run: Path, kill_after: float | None = None) -> dict:
    return measured(["prepare", "--data", str(folder), "--run-dir", str(run)], cache, kill_after)


def measured(arguments: list, cache: Path, kill_after: float | None = None) -> dict:
    """One `sgan` command, its wall time and the peak resident memory summed over its process tree."""
    env = {**os.environ, "SGAN_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    process = subprocess.Popen([SGAN, *arguments], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    peak, peak_anonymous, done = 0, 0, threading.Event()

    def sample():
        nonlocal peak, peak_anonymous
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
                peak_anonymous = max(peak_anonymous, sum(_anonymous(p.pid) for p in tree))
            except (psutil.Error, OSError):
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done.set()
    sampler.join()
    return {"s": round(time.perf_counter() - started, 1), "peak_mb": round(peak / 2**20),
            "peak_anonymous_mb": round(peak_anonymous / 2**20), "rc": process.returncode}


def _anonymous(pid: int) -> int:
    """Bytes of the process's own memory (RssAnon): its resident size without the pages of memory-mapped files,
    which the kernel writes back and drops under pressure (the decoded arrays are such maps)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--counts", type=int, nargs="+", default=[10000, 30000, 100000])
    args = parser.parse_args()
    here = commit()
    done = {(line["unlabeled"], line["commit"]) for line in map(json.loads, RESULTS.read_text().splitlines())} \
        if RESULTS.exists() else set()
    for count in args.counts:
        if (count, here) in done:
            continue
        folder = args.out / f"folder-{count}"
        started = time.perf_counter()
        generate(folder, count)
        generated_s = time.perf_counter() - started
        cache, runs = args.out / "cache", args.out / "runs"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
        cold = prepare(folder, cache, runs / "cold")
        warm = prepare(folder, cache, runs / "warm")
        shutil.rmtree(cache)
        killed = prepare(folder, cache, runs / "killed", kill_after=cold["s"] / 2)
        rerun = prepare(folder, cache, runs / "rerun")
        train = measured(["train", "--run-dir", str(runs / "rerun"), "--iterations", str(TRAIN_ITERATIONS),
                          "--workers", "1"], cache)
        files = count + 100
        record({"benchmark": "prepare_scale", "unlabeled": count, "files": files, "cpu": cpu(), "commit": here,
                "generated_s": round(generated_s, 1), "cold": {**cold, "files_per_s": round(files / cold["s"])},
                "warm": {**warm, "files_per_s": round(files / warm["s"])}, "killed_at_s": killed["s"],
                "rerun_after_kill": rerun, "train": {**train, "iterations": TRAIN_ITERATIONS}}, RESULTS)


if __name__ == "__main__":
    main()
