"""The registry's memory: an append-only history of every decision, one lock for every change, and `latest` moved
atomically.

    MODELS/history.jsonl   one JSON object a line: time, version, event (promoted, refused), reason, figures
    MODELS/.lock           held while a version is numbered, written and `latest` moved
"""

import fcntl
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sgan.errors import writing


@contextmanager
def lock(models_root: Path):
    """Two publishes (or a publish and a rollback) at once take turns: distinct versions, one `latest` at a time."""
    models_root.mkdir(parents=True, exist_ok=True)
    with open(models_root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def record(models_root: Path, version: str, event: str, reason: str, **figures):
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "version": version, "event": event,
             "reason": reason, **figures}
    with writing(models_root / "history.jsonl"), open(models_root / "history.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def read(models_root: Path) -> list[dict]:
    path = models_root / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def point_latest(models_root: Path, version: str):
    """`latest` -> `version`, replaced in one rename: a reader sees the old link or the new one."""
    temporary = models_root / f".latest.{version}"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(version)
    os.replace(temporary, models_root / "latest")
