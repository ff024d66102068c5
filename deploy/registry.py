"""`sgan models`: the published versions, their decisions, and moving `latest` by hand (promote, rollback).

Every change of `latest` takes the registry's lock and is recorded in history.jsonl; a rollback returns to the
version `latest` pointed to before the last promotion, and a second rollback goes one further back.
"""

import json
import re
from pathlib import Path

from deploy import history
from sgan.errors import UserError

NEEDED = ("model.onnx", "manifest.json", "metrics.json")
MOVES_LATEST = ("promoted", "promoted by hand")


def _root(models_root: Path) -> Path:
    if not models_root.is_dir():
        raise UserError(f"{models_root}: no such models folder (the pipeline publishes to runs/pipeline/models)")
    return models_root


def version_dir(models_root: Path, version: str) -> Path:
    path = _root(models_root) / version
    if not path.is_dir():
        known = ", ".join(sorted(p.name for p in models_root.glob("v[0-9]*"))) or "none"
        raise UserError(f"{version}: no such version in {models_root} (published: {known})")
    missing = [name for name in NEEDED if not (path / name).exists()]
    if missing:
        raise UserError(f"{path}: incomplete version, missing {', '.join(missing)}")
    return path


def latest(models_root: Path) -> str | None:
    link = models_root / "latest"
    return Path(link.readlink()).name if link.is_symlink() else None


def is_version(path: Path) -> bool:
    """A published version folder (vNNNN with its model), as opposed to a models root."""
    return re.fullmatch(r"v\d+", path.name) is not None and (path / "model.onnx").is_file()


def served(models_root: Path) -> tuple[str, bool]:
    """(the version to serve, whether `latest` says so): `latest`, else the newest published version, so that a
    first model that was not promoted can still be tried, labeled with and served."""
    if current := latest(models_root):
        return current, True
    versions = sorted((p for p in _root(models_root).glob("v[0-9]*") if is_version(p)), key=lambda p: int(p.name[1:]))
    if not versions:
        raise UserError(f"{models_root}: holds no published version (`sgan pipeline` publishes one; or name an "
                        ".onnx file)")
    return versions[-1].name, False


def stack(models_root: Path) -> list[str]:
    """The versions `latest` has pointed to, oldest first, with rolled-back ones taken off."""
    versions = []
    for event in history.read(models_root):
        if event["event"] in MOVES_LATEST:
            versions.append(event["version"])
        elif event["event"] == "rolled back" and versions:
            versions.pop()
    return versions


def rows(models_root: Path) -> list[dict]:
    decisions = {e["version"]: e for e in history.read(_root(models_root)) if e["event"] in ("promoted", "refused")}
    current = latest(models_root)
    table = []
    for path in sorted(models_root.glob("v[0-9]*")):
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
        manifest = json.loads((path / "manifest.json").read_text()) if (path / "manifest.json").exists() else {}
        decision = decisions.get(path.name, {})
        table.append({"version": path.name, "date": decision.get("time", "-"),
                      "test_accuracy": metrics.get("test_accuracy"), "baseline": metrics.get("baseline_test_accuracy"),
                      "labels": manifest.get("labels"), "latest": path.name == current,
                      "decision": decision.get("event", "-"), "reason": decision.get("reason", "")})
    return table


def promote(models_root: Path, version: str) -> str:
    from deploy.runtime import Classifier

    path = version_dir(models_root, version)
    Classifier(path / "model.onnx")  # one that cannot serve is refused here, before any server sees it
    with history.lock(models_root):
        history.point_latest(models_root, path.name)
        history.record(models_root, path.name, "promoted by hand", "sgan models promote")
    return path.name


def rollback(models_root: Path) -> tuple[str, str]:
    """(from, to): `latest` back to the version it pointed to before the last promotion."""
    with history.lock(_root(models_root)):
        versions, current = stack(models_root), latest(models_root)
        if current is None:
            raise UserError(f"{models_root}: no `latest` to roll back")
        if len(versions) < 2:
            raise UserError(f"{models_root}: {current} is the first promoted version; there is nothing to roll back to")
        target = version_dir(models_root, versions[-2]).name
        history.point_latest(models_root, target)
        history.record(models_root, current, "rolled back", f"`latest` back to {target}", to=target)
    return current, target
