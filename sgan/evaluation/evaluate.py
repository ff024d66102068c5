"""Evaluation: test accuracy, per-class accuracy, confusion matrix, sample grid, learning curves."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from sgan import atomic, data
from sgan.data.dataset import Dataset

MILESTONES = (0.95, 0.97, 0.98, 0.99)  # validation accuracies whose training time is reported


def predict_classes(discriminator, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    predictions = [
        tf.argmax(discriminator(batch, training=False), axis=-1).numpy() for batch in data.test_batches(images, batch_size)
    ]
    return np.concatenate(predictions)


def accuracy(discriminator, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predict_classes(discriminator, images) == labels))


def pseudo_label_quality(discriminator, images: np.ndarray, labels: np.ndarray, teacher) -> dict:
    """Where labels are known (the validation split): the share of the images that would teach as pseudo-labels
    (the teacher's mean weight: sgan.models.pseudo_labels), how often those are right, and how often the ones left
    out are, each weighted by the teacher's weights. The teacher's running statistics are read, not updated."""
    logits = np.concatenate([discriminator(batch, training=False).numpy() for batch in data.test_batches(images, 1000)])
    targets, weights, _ = teacher(logits, update=False)
    weights, right = weights.numpy(), targets.numpy() == labels
    quality = {"validation_pseudo_label_rate": float(weights.mean())}
    if weights.sum() > 0:
        quality["validation_pseudo_label_accuracy"] = float((weights * right).sum() / weights.sum())
    if (1 - weights).sum() > 0:
        quality["validation_left_out_accuracy"] = float(((1 - weights) * right).sum() / (1 - weights).sum())
    return quality


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_metrics(discriminator, dataset: Dataset) -> dict:
    predictions = predict_classes(discriminator, dataset.x_test)
    matrix = confusion_matrix(dataset.y_test, predictions, dataset.num_classes)
    per_class = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    return {
        "test_accuracy": float(np.mean(predictions == dataset.y_test)),
        "per_class_accuracy": per_class.round(6).tolist(),
        "confusion_matrix": matrix.tolist(),
    }


def plot_confusion_matrix(matrix, path, class_names=None):
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 2 else "black")
    names = list(class_names or range(len(matrix)))
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test set)",
           xticks=range(len(matrix)), yticks=range(len(matrix)))
    ax.set_xticklabels(names, rotation=45 if max(len(str(n)) for n in names) > 2 else 0, ha="right")
    ax.set_yticklabels(names)
    save_figure(fig, path)


def plot_samples(generator, z_dim: int, seed: int, path, rows: int = 10):
    """A rows x rows grid of generated images from fixed noise."""
    import matplotlib.pyplot as plt

    z = np.random.default_rng(seed).standard_normal((rows * rows, z_dim)).astype(np.float32)
    images = (generator(z, training=False).numpy() + 1.0) / 2.0
    fig, axes = plt.subplots(rows, rows, figsize=(rows, rows))
    for image, ax in zip(images, axes.flat):
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("Generated samples")
    save_figure(fig, path)


def plot_learning_curves(history: list, path):
    import matplotlib.pyplot as plt

    fig, (losses, accuracy_ax) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in history]
    for name in ("supervised", "unsupervised", "generator"):
        losses.plot(steps, [r[name] for r in history], label=name)
    losses.set(xlabel="iteration", ylabel="loss", title="Losses")
    losses.legend()
    evaluated = [r for r in history if "validation_accuracy" in r]
    accuracy_ax.plot([r["step"] for r in evaluated], [r["validation_accuracy"] for r in evaluated], marker="o")
    accuracy_ax.set(xlabel="iteration", ylabel="validation accuracy", title="Held-out validation accuracy")
    save_figure(fig, path)


def save_figure(fig, path):
    """PNG written atomically (a reader never sees half a picture), and the figure closed."""
    import matplotlib.pyplot as plt

    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)


def time_to_accuracy(history: list, milestones=MILESTONES) -> dict:
    """Training seconds at the first validation evaluation at or above each milestone ("95": 245.3), None where
    the run never got there: how soon a run is useful, which the final accuracy alone does not say."""
    evaluated = [r for r in history if "validation_accuracy" in r]
    return {f"{100 * m:g}": next((r["seconds"] for r in evaluated if r["validation_accuracy"] >= m), None)
            for m in milestones}


def load_history(run_dir) -> list:
    path = Path(run_dir) / "history.json"
    return json.loads(path.read_text()) if path.exists() else []
