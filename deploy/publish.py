"""Publishing: an immutable, versioned model directory, and a `latest` link moved only past the gates.

    MODELS/v0001/  model.onnx  model.int8.onnx  metrics.json  manifest.json  onnx_report.json  *.png  MODEL_CARD.md
                   generator.keras  discriminator.keras
    MODELS/latest -> v0001
"""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from deploy import champion as champion_
from deploy import history
from sgan.evaluation import paired

from sgan.errors import UserError, writing
from sgan.run import RunDir

FILES = ("model.onnx", "model.int8.onnx", "metrics.json", "manifest.json", "onnx_report.json", "config.json",
         "provenance.json", "confusion_matrix.png", "samples.png", "learning_curves.png",
         "generator.keras", "discriminator.keras")  # the weights a warm start begins from (sgan.training.warm)


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
    if summary := (_baseline_comparison(metrics) or {}).get("summary"):
        evaluation.append(summary[0].upper() + summary[1:] + ".")
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


DEFAULT_GATE = 0.9  # benchmark data (MNIST): the test accuracy to reach, when the user sets none


def publish(run_dir, models_root, accuracy_gate: float | None = None, allow_test_leaks: bool = False,
            tolerance: float = 0.0, force: bool = False) -> Path:
    """Copies the run's artifacts into the next version directory (renamed into place whole), then moves
    `latest` to it if it passes the gates. Raises GateFailed, leaving `latest` as it was. Each decision is
    appended to MODELS/history.jsonl.

    The gates: the test accuracy reaches `accuracy_gate` (None: DEFAULT_GATE on benchmark data; on the user's own
    data, no absolute gate, but not significantly less accurate than the supervised-only baseline trained on the
    same labels, by McNemar's test on the same test images, or unevaluated with a warning when there is no test
    set); the candidate is not
    worse than the model `latest` points to (the champion) on the candidate's test set, beyond `tolerance` (deploy/champion.py); it has the
    champion's class names and input shape unless `force`. A first model has no champion. A gate
    (accuracy_gate > 0) never passes silently: not without a test set, and not on a test set that shares images
    with the training data unless `allow_test_leaks`."""
    with history.lock(Path(models_root)):
        return _publish(run_dir, models_root, accuracy_gate, allow_test_leaks, tolerance, force)


def _publish(run_dir, models_root, accuracy_gate: float, allow_test_leaks: bool, tolerance: float,
             force: bool) -> Path:
    run_dir, models_root = Path(run_dir), Path(models_root)
    run = RunDir(run_dir)
    metrics, manifest = run.read_json("metrics.json", "evaluate first"), run.manifest()
    onnx_report = run.read_json("onnx_report.json", "export first")
    models_root.mkdir(parents=True, exist_ok=True)
    champion = (models_root / "latest").resolve() if (models_root / "latest").is_dir() else None
    refusal, comparison = _against_champion(run, champion, metrics, manifest, tolerance, force)
    version = next_version(models_root)
    staging, target = models_root / f".{version}.staging", models_root / version
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with writing(target):
            staging.mkdir()
            for name in FILES:
                if (run_dir / name).exists():
                    shutil.copy2(run_dir / name, staging / name)
            card = model_card(metrics, manifest, onnx_report, version)
            if comparison:
                card += f"\nAgainst the model in production: {comparison.summary()}.\n"
            (staging / "MODEL_CARD.md").write_text(card)
    except UserError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, target)

    leaked, evaluated = leaked_test_images(manifest), metrics["test_accuracy"] is not None
    by_baseline = accuracy_gate is None and manifest.get("labeled_by") == "source"  # the user's own data
    gate = (0.0 if by_baseline else DEFAULT_GATE) if accuracy_gate is None else accuracy_gate
    if by_baseline and not evaluated:
        print(f"warning: no test set, so {target.name} is promoted unevaluated (its accuracy is unknown)")
    if gate > 0 and not evaluated:
        refusal = (f"no test set, so the accuracy gate {gate:.2%} cannot be checked: {target} "
                   "published unevaluated, `latest` left unchanged (set the gate to 0 to promote it)")
    elif (gate > 0 or by_baseline) and leaked and not allow_test_leaks:
        refusal = (f"{leaked} test images also appear in the training data, so the test accuracy overstates: "
                   f"{target} published, `latest` left unchanged (allow test leaks to promote it anyway)")
    elif gate > 0 and metrics["test_accuracy"] < gate:
        refusal = (f"test accuracy {metrics['test_accuracy']:.2%} is below the gate {gate:.2%}: "
                   f"{target} published, `latest` left unchanged")
    elif by_baseline and (weaker := _against_baseline(metrics)):
        refusal = f"{weaker}: {target} published, `latest` left unchanged"
    elif refusal:
        refusal = f"{refusal}: {target} published, `latest` left unchanged"
    history.record(models_root, version, "refused" if refusal else "promoted", refusal or (
        comparison.summary() if comparison else "no model in production yet: judged by the "
        + ("supervised-only baseline" if by_baseline else "accuracy gate") + " alone"),
        test_accuracy=metrics["test_accuracy"], comparison=comparison.to_dict() if comparison else None)
    if refusal:
        raise GateFailed(refusal, target)
    history.point_latest(models_root, version)
    return target


def _baseline_comparison(metrics: dict) -> dict | None:
    """metrics.json's comparison with the supervised-only baseline (counts, p-value, verdict, the sentence), made
    whole from the counts where an older evaluation recorded only those; None without one."""
    compared = metrics.get("against_baseline")
    if metrics["test_accuracy"] is None or compared is None or "verdict" in compared:
        return compared
    return paired.against_baseline(metrics["test_accuracy"], metrics["baseline_test_accuracy"], compared["sgan_only"],
                                   compared["baseline_only"], metrics.get("test_size", 0))


def _against_baseline(metrics: dict) -> str | None:
    """Why the model must not serve although nothing says it is worse than production: it is significantly less
    accurate than its own supervised-only baseline (the unlabeled images hurt; something is wrong). Else None."""
    compared = _baseline_comparison(metrics)
    if compared is None or compared["verdict"] != "worse":
        return None
    return (f"significantly less accurate than its supervised-only baseline: {compared['summary']}; something in "
            "this run is wrong (too few iterations? labels in the wrong folders?)")


def _against_champion(run: RunDir, champion: Path | None, metrics: dict, manifest: dict, tolerance: float,
                      force: bool) -> tuple[str | None, "champion_.Comparison | None"]:
    """(why the candidate may not replace the champion, or None; the comparison on the same images, if made)."""
    if champion is None or metrics["test_accuracy"] is None:
        return None, None
    held = json.loads((champion / "manifest.json").read_text())
    if held.get("class_names") != manifest.get("class_names") and not force:
        return (f"its classes {manifest.get('class_names')} differ from {champion.name}'s {held.get('class_names')} "
                "(force to replace it anyway)"), None
    if held["dataset"]["image_shape"] != manifest["dataset"]["image_shape"]:
        shapes = f"its input shape {manifest['dataset']['image_shape']} differs from {champion.name}'s " \
                 f"{held['dataset']['image_shape']}"
        return (None if force else f"{shapes} (force to replace it anyway)"), None
    dataset = run.dataset()
    comparison = champion_.compare(run / "model.onnx", champion, np.asarray(dataset.x_test), dataset.y_test, tolerance)
    return (comparison.summary() if comparison.worse else None), comparison
