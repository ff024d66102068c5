"""Evaluates a trained run directory: metrics, the supervised-only baseline, and the pictures."""

from sgan import atomic, evaluate
from sgan.baseline import train_baseline
from sgan.run import RunDir


def evaluate_run(run_dir, baseline: bool = True) -> dict:
    """Writes metrics.json, confusion_matrix.{json,png}, samples.png and learning_curves.png; returns the metrics."""
    run = RunDir(run_dir)
    manifest, dataset, config = run.manifest(), run.dataset(), run.config()
    generator, discriminator = run.model("generator"), run.model("discriminator")
    metrics = evaluate.classification_metrics(discriminator, dataset)
    if baseline:
        supervised_only = train_baseline(config, dataset, run.labeled())
        metrics["baseline_test_accuracy"] = evaluate.accuracy(supervised_only, dataset.x_test, dataset.y_test)
    metrics.update(labels=manifest["labels"], seed=manifest["seed"], iterations=config.iterations,
                   dataset_sha256=manifest["dataset"]["sha256"])

    evaluate.plot_confusion_matrix(metrics["confusion_matrix"], run / "confusion_matrix.png")
    atomic.write_json(run / "confusion_matrix.json", metrics["confusion_matrix"])
    evaluate.plot_samples(generator, config.z_dim, config.seed, run / "samples.png")
    history = evaluate.load_history(run.path)
    if history:
        evaluate.plot_learning_curves(history, run / "learning_curves.png")
    atomic.write_json(run / "metrics.json", metrics)
    return metrics
