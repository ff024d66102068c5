"""Publishing: an immutable, versioned model directory, and a `latest` link moved only past the gates.

    MODELS/v0001/  model.onnx  model.int8.onnx  metrics.json  manifest.json  onnx_report.json  *.png  MODEL_CARD.md
    MODELS/latest -> v0001
"""

import os
import re
import shutil
from pathlib import Path

from sgan.errors import UserError, writing
from sgan.run import RunDir

FILES = ("model.onnx", "model.int8.onnx", "metrics.json", "manifest.json", "onnx_report.json", "config.json",
         "confusion_matrix.png", "samples.png", "learning_curves.png")


class GateFailed(UserError):
    """The model was published as a version, but not promoted to `latest`."""

    def __init__(self, message: str, version_dir: Path):
        super().__init__(message)
        self.version_dir = version_dir


def leaked_test_images(manifest: dict) -> int:
    leaks = manifest.get("leaks") or {}
    return leaks.get("test_images_in_labeled", 0) + leaks.get("test_images_in_unlabeled", 0)


def _percent(value) -> str:
    return "not measured" if value is None else f"{value:.2%}"


def model_card(metrics: dict, manifest: dict, onnx_report: dict, version: str) -> str:
    parity, int8 = onnx_report["float"]["parity"], onnx_report["int8"]
    baseline = metrics.get("baseline_test_accuracy")
    names = manifest.get("class_names") or [str(k) for k in range(len(manifest["per_class"]))]
    labeled = (f"{manifest['labels']} ({manifest['per_class'][0]} per class, seed {manifest['seed']})"
               if manifest.get("labeled_by", "seed") == "seed" else f"{manifest['labels']} (as the data marks them)")
    leaked = leaked_test_images(manifest)
    evaluation = (["Per-class test accuracy: " + ", ".join(f"{n} {a:.1%}" for n, a in
                                                             zip(names, metrics["per_class_accuracy"]))]
                  if metrics["test_accuracy"] is not None else
                  ["**Unevaluated**: the data has no test set, so this model's accuracy is unknown."])
    if leaked:
        evaluation.append(f"**Warning**: {leaked} test images also appear in the training data; the test accuracy "
                          "overstates.")
    return "\n".join([
        f"# sgan classifier {version}",
        "",
        "Semi-supervised GAN discriminator (softmax head), exported to ONNX for onnxruntime.",
        "",
        "| | |",
        "| --- | --- |",
        f"| test accuracy | {_percent(metrics['test_accuracy'])} |",
        f"| supervised-only baseline (same labels) | {baseline:.2%} |" if baseline is not None else "| baseline | not run |",
        f"| classes | {', '.join(names)} |",
        f"| labeled examples | {labeled} |",
        f"| images learned from unlabeled | {manifest['dataset']['train_size']} |",
        f"| training iterations | {metrics['iterations']} |",
        f"| ONNX parity (max abs diff, same class) | {parity['max_abs_diff']:.1e}, {parity['same_class']:.2%} |",
        f"| INT8 edge model | {'published' if int8['published'] else 'not published'}, "
        f"{_percent(int8['test_accuracy'])} |",
        "",
        *evaluation,
        "",
        "Input: uint8 images `[N, H, W, C]` named `images`; outputs `probabilities` `[N, K]` and `class` `[N]`.",
        f"Dataset SHA-256: `{manifest['dataset']['sha256']}`.",
        "",
    ])


def next_version(models_root: Path) -> str:
    numbers = [int(m.group(1)) for p in models_root.glob("v*") if (m := re.fullmatch(r"v(\d+)", p.name))]
    return f"v{max(numbers, default=0) + 1:04d}"


def publish(run_dir, models_root, accuracy_gate: float, allow_test_leaks: bool = False) -> Path:
    """Copies the run's artifacts into the next version directory (renamed into place whole), then moves
    `latest` to it if the test accuracy reaches the gate. Raises GateFailed, leaving `latest` as it was.

    A gate (accuracy_gate > 0) never passes silently: not without a test set, and not on a test set that shares
    images with the training data unless `allow_test_leaks`."""
    run_dir, models_root = Path(run_dir), Path(models_root)
    run = RunDir(run_dir)
    metrics, manifest = run.read_json("metrics.json", "evaluate first"), run.manifest()
    onnx_report = run.read_json("onnx_report.json", "export first")
    models_root.mkdir(parents=True, exist_ok=True)
    version = next_version(models_root)
    staging, target = models_root / f".{version}.staging", models_root / version
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with writing(target):
            staging.mkdir()
            for name in FILES:
                if (run_dir / name).exists():
                    shutil.copy2(run_dir / name, staging / name)
            (staging / "MODEL_CARD.md").write_text(model_card(metrics, manifest, onnx_report, version))
    except UserError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, target)

    leaked = leaked_test_images(manifest)
    if accuracy_gate > 0 and metrics["test_accuracy"] is None:
        raise GateFailed(f"no test set, so the accuracy gate {accuracy_gate:.2%} cannot be checked: {target} "
                         "published unevaluated, `latest` left unchanged (set the gate to 0 to promote it)", target)
    if accuracy_gate > 0 and leaked and not allow_test_leaks:
        raise GateFailed(f"{leaked} test images also appear in the training data, so the test accuracy overstates: "
                         f"{target} published, `latest` left unchanged (allow test leaks to promote it anyway)", target)
    if accuracy_gate > 0 and metrics["test_accuracy"] < accuracy_gate:
        raise GateFailed(f"test accuracy {metrics['test_accuracy']:.2%} is below the gate {accuracy_gate:.2%}: "
                         f"{target} published, `latest` left unchanged", target)
    link = models_root / "latest"
    temporary = models_root / f".latest.{version}"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(version)
    os.replace(temporary, link)
    return target
