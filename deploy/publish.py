"""Publishing: an immutable, versioned model directory, and a `latest` link moved only past the gates.

    MODELS/v0001/  model.onnx  model.int8.onnx  metrics.json  manifest.json  onnx_report.json  *.png  MODEL_CARD.md
    MODELS/latest -> v0001
"""

import os
import re
import shutil
from pathlib import Path

from sgan.errors import UserError
from sgan.run import RunDir

FILES = ("model.onnx", "model.int8.onnx", "metrics.json", "manifest.json", "onnx_report.json", "config.json",
         "confusion_matrix.png", "samples.png", "learning_curves.png")


class GateFailed(UserError):
    """The model was published as a version, but not promoted to `latest`."""

    def __init__(self, message: str, version_dir: Path):
        super().__init__(message)
        self.version_dir = version_dir


def model_card(metrics: dict, manifest: dict, onnx_report: dict, version: str) -> str:
    parity, int8 = onnx_report["float"]["parity"], onnx_report["int8"]
    baseline = metrics.get("baseline_test_accuracy")
    per_class = " | ".join(f"{a:.1%}" for a in metrics["per_class_accuracy"])
    return "\n".join([
        f"# sgan classifier {version}",
        "",
        "Semi-supervised GAN discriminator (softmax head), exported to ONNX for onnxruntime.",
        "",
        "| | |",
        "| --- | --- |",
        f"| test accuracy | {metrics['test_accuracy']:.2%} |",
        f"| supervised-only baseline (same labels) | {baseline:.2%} |" if baseline is not None else "| baseline | not run |",
        f"| labeled examples | {manifest['labels']} ({manifest['per_class'][0]} per class, seed {manifest['seed']}) |",
        f"| training iterations | {metrics['iterations']} |",
        f"| ONNX parity (max abs diff, same class) | {parity['max_abs_diff']:.1e}, {parity['same_class']:.2%} |",
        f"| INT8 edge model | {'published' if int8['published'] else 'not published'}, "
        f"{int8['test_accuracy']:.2%} |",
        "",
        f"Per-class accuracy: {per_class}",
        "",
        "Input: uint8 images `[N, H, W, C]` named `images`; outputs `probabilities` `[N, K]` and `class` `[N]`.",
        f"Dataset SHA-256: `{manifest['dataset']['sha256']}`.",
        "",
    ])


def next_version(models_root: Path) -> str:
    numbers = [int(m.group(1)) for p in models_root.glob("v*") if (m := re.fullmatch(r"v(\d+)", p.name))]
    return f"v{max(numbers, default=0) + 1:04d}"


def publish(run_dir, models_root, accuracy_gate: float) -> Path:
    """Copies the run's artifacts into the next version directory (renamed into place whole), then moves
    `latest` to it if the test accuracy reaches the gate. Raises GateFailed, leaving `latest` as it was."""
    run_dir, models_root = Path(run_dir), Path(models_root)
    run = RunDir(run_dir)
    metrics, manifest = run.read_json("metrics.json", "evaluate first"), run.manifest()
    onnx_report = run.read_json("onnx_report.json", "export first")
    models_root.mkdir(parents=True, exist_ok=True)
    version = next_version(models_root)
    staging = models_root / f".{version}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, staging / name)
    (staging / "MODEL_CARD.md").write_text(model_card(metrics, manifest, onnx_report, version))
    target = models_root / version
    os.rename(staging, target)

    if metrics["test_accuracy"] < accuracy_gate:
        raise GateFailed(f"test accuracy {metrics['test_accuracy']:.2%} is below the gate {accuracy_gate:.2%}: "
                         f"{target} published, `latest` left unchanged", target)
    link = models_root / "latest"
    temporary = models_root / f".latest.{version}"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(version)
    os.replace(temporary, link)
    return target
