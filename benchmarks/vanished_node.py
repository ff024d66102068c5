"""The vanished-node test under load: runs tests/test_multinode.py's test where node2 leaves the network, N times in
a row, each in its own pytest process, beside a CPU-bound process (a busy loop) for the whole series. Each run's
outcome and the launcher's stop time (from the cut to its one line) is appended to
benchmarks/results/vanished_node.jsonl as it ends; runs already recorded for this commit count towards N, so an
interrupted series continues. Prints one JSON line: passes, and the spread of the stop times.

    python benchmarks/vanished_node.py [--runs 20]
"""

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from photos import cpu
from suite_time import commit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "vanished_node.jsonl"
TEST = "tests/test_multinode.py::test_a_node_that_vanishes_stops_the_job_within_the_gloo_timeout_and_a_rerun_resumes"


def busy():
    while True:
        pass


def once() -> dict:
    """One pytest run of the test: passed or not, and the stop time it recorded."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST,
                                 f"--junitxml={junit}"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        properties = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    stopped = properties.get("stopped_in_s")
    return {"passed": result.returncode == 0, "stopped_in_s": float(stopped) if stopped else None,
            "test_s": round(seconds, 1), **({} if result.returncode == 0 else {"tail": result.stdout[-1500:]})}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    head = {"benchmark": "vanished_node", "cpu": cpu(), "commit": commit(), "load": "1 busy-loop process"}
    lines = [json.loads(l) for l in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    done = [l for l in lines if l.get("commit") == head["commit"] and "run" in l]
    burner = multiprocessing.Process(target=busy, daemon=True)
    burner.start()
    try:
        for run in range(len(done) + 1, args.runs + 1):
            line = {**head, "run": run, **once()}
            with RESULTS.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(json.dumps(line), file=sys.stderr, flush=True)
            done.append(line)
    finally:
        burner.kill()
    stops = [l["stopped_in_s"] for l in done if l["stopped_in_s"] is not None]
    print(json.dumps({**head, "runs": len(done), "passed": sum(l["passed"] for l in done),
                      "stopped_in_s": {"min": min(stops), "median": statistics.median(stops), "max": max(stops)}
                      if stops else None}))


if __name__ == "__main__":
    main()
