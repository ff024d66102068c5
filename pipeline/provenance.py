"""What made a model: the run's name (its prepared data, labels and every option that shapes the model) and the
code, so that a flow run on the same data, configuration and code as the model `latest` serves can stop at once.

Published with each version as provenance.json.
"""

import hashlib
import json
from pathlib import Path

PACKAGES = ("sgan", "deploy", "pipeline")
FILE = "provenance.json"


def code_digest() -> str:
    """SHA-256 over the source of the packages that train, export and publish (not the tests or the docs)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for package in PACKAGES for p in (root / package).rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def of_run(run_name: str) -> dict:
    return {"run": run_name, "code": code_digest()}


def serving_the_same(models_root: Path, provenance: dict) -> Path | None:
    """The version `latest` points to, if it was made from exactly `provenance`."""
    latest = models_root / "latest"
    recorded = latest / FILE
    if latest.is_dir() and recorded.is_file() and json.loads(recorded.read_text()) == provenance:
        return latest.resolve()
    return None
