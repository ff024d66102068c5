"""Evaluates a trained run directory: metrics, the supervised-only baseline, and the pictures."""

from sgan import atomic
from sgan.evaluation import evaluate, paired
from sgan.evaluation.baseline import steps as baseline_steps
from sgan.evaluation.baseline import train_baseline
from sgan.run import RunDir


def evaluate_run(run_dir, baseline: bool = True) -> dict:
    """Writes metrics.json, confusion_matrix.{json,png} (with a test set), samples.png and learning_curves.png
    (and the seconds to each validation milestone, with a validation split);
    returns the metrics (test_accuracy None, evaluated False, without a test set)."""
    run = RunDir(run_dir)
    manifest, dataset, config = run.manifest(), run.dataset(), run.config()
    generator, discriminator = run.model("generator"), run.model("discriminator")
    metrics = {"test_accuracy": None, "evaluated": False}  # no test set: nothing to measure, and it says so
    if dataset.has_test:
        metrics = {**evaluate.classification_metrics(discriminator, dataset), "evaluated": True}
        if baseline:
            supervised_only = train_baseline(config, dataset, run.labeled())
            right = [evaluate.predict_classes(model, dataset.x_test) == dataset.y_test
                     for model in (discriminator, supervised_only)]
            metrics["baseline_test_accuracy"] = float(right[1].mean())
            metrics["baseline_steps"] = baseline_steps(config)
            # the paired counts that McNemar's test reads (deploy/publish.py's gate for the user's own data)
            metrics["against_baseline"] = paired.against_baseline(
                metrics["test_accuracy"], metrics["baseline_test_accuracy"], int((right[0] & ~right[1]).sum()),
                int((right[1] & ~right[0]).sum()), len(dataset.y_test))
    metrics.update(labels=manifest["labels"], seed=manifest["seed"], iterations=config.iterations,
                   dataset_sha256=manifest["dataset"]["sha256"], class_names=list(dataset.class_names),
                   test_size=len(dataset.x_test), test_leaks=manifest.get("leaks"))
    history = evaluate.load_history(run.path)
    if any("validation_accuracy" in r for r in history):
        metrics["seconds_to_validation"] = evaluate.time_to_accuracy(history)

    if dataset.has_test:
        evaluate.plot_confusion_matrix(metrics["confusion_matrix"], run / "confusion_matrix.png", dataset.class_names)
        atomic.write_json(run / "confusion_matrix.json", metrics["confusion_matrix"])
    evaluate.plot_samples(generator, config.z_dim, config.seed, run / "samples.png")
    if history:
        evaluate.plot_learning_curves(history, run / "learning_curves.png")
    atomic.write_json(run / "metrics.json", metrics)
    return metrics
