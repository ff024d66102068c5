"""Where the test suite's time goes: runs `make test` (the README's test command, as CI runs it) with a JUnit
report added through PYTEST_ADDOPTS, and prints one JSON line: the wall time, the outcome counts, the seconds each
test file's tests took (set-up included; with several test processes their sum exceeds the wall time) and the
slowest tests. The line is appended to benchmarks/results/suite_time.jsonl.

    python benchmarks/suite_time.py              # runs `make test` in this clone
    python benchmarks/suite_time.py --junit F    # summarizes a JUnit report of an earlier run instead
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from photos import cpu, record

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "suite_time.jsonl"


def summarize(junit: Path) -> dict:
    """Per file: tests and seconds; outcomes; the ten slowest tests."""
    files, cases, outcomes = defaultdict(lambda: [0, 0.0]), [], defaultdict(int)
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = [part for part in case.get("classname", "").split(".") if part.startswith("test_")]
        name = (module[0] if module else case.get("classname", "?")) + ".py"
        seconds = float(case.get("time", 0))
        files[name][0] += 1
        files[name][1] += seconds
        cases.append((seconds, f"{name}::{case.get('name')}"))
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[outcome] += 1
    by_time = sorted(files.items(), key=lambda item: -item[1][1])
    return {"outcomes": dict(outcomes),
            "files": {name: {"tests": n, "seconds": round(s, 1)} for name, (n, s) in by_time},
            "slowest": [{"test": name, "seconds": round(s, 1)} for s, name in sorted(cases, reverse=True)[:10]]}


CODE = ("sgan", "deploy", "pipeline", "cli", "tests", "scripts", "Makefile", "pyproject.toml", "requirements.lock")


def commit() -> str:
    """The last commit that changed the code or the tests (a commit of results alone measures nothing new), with
    `+changes` when they differ from it."""
    last = subprocess.run(["git", "log", "-1", "--format=%h", "--", *CODE], capture_output=True, text=True, cwd=ROOT)
    changed = subprocess.run(["git", "status", "--porcelain", "--", *CODE], capture_output=True, text=True, cwd=ROOT)
    return last.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, help="a JUnit report to summarize instead of running the suite")
    args = parser.parse_args()
    line = {"benchmark": "suite_time", "cpu": cpu(), "commit": commit(),
            "date": datetime.date.today().isoformat()}
    if args.junit:
        line.update(command=f"summary of {args.junit.name}", **summarize(args.junit))
        print(json.dumps(line))
        return
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "PYTEST_ADDOPTS": f"{os.environ.get('PYTEST_ADDOPTS', '')} --junitxml={junit}".strip()}
        started = time.perf_counter()
        code = subprocess.run(["make", "test"], cwd=ROOT, env=env, stdout=sys.stderr).returncode  # stdout: the line
        line.update(command="make test", exit_code=code, wall_s=round(time.perf_counter() - started, 1),
                    **summarize(junit))
    record(line, RESULTS)


if __name__ == "__main__":
    main()
