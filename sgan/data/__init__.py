"""Datasets: loading, the labeled subset, the manifest, test-set leaks, and tf.data input pipelines
(loading each kind of source is sgan/sources).

Batches are a pure function of (seed, stream, step), so resuming at step t needs only t, and workers
take disjoint slices of the same global order.
"""

import hashlib
import itertools
from collections import Counter

import numpy as np

from sgan.data.dataset import UNLABELED, Dataset
from sgan.errors import UserError

DEFAULT_LABELS = 100  # labeled examples drawn from fully labeled (benchmark) data when not said otherwise


def load(source, **options) -> Dataset:
    """The validated dataset at `source` (see sgan/sources: image folders, .npz files, IDX folders)."""
    from sgan.data import sources

    return sources.load(source, **options)


def choose_labeled(y: np.ndarray, labels: int, num_classes: int, seed: int) -> np.ndarray:
    """Class-balanced labeled subset: `labels // num_classes` indices per class, drawn from `seed`."""
    if labels <= 0 or labels % num_classes:
        raise UserError(f"labels={labels} must be a positive multiple of the number of classes ({num_classes})")
    per_class = labels // num_classes
    rng = np.random.default_rng(seed)
    chosen = []
    for k in range(num_classes):
        members = np.flatnonzero(y == k)
        if len(members) < per_class:
            raise UserError(f"labels={labels} needs {per_class} examples of class {k}, the data has {len(members)}")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def labeled_subset(dataset: Dataset, labels: int | None, seed: int) -> np.ndarray:
    """Which training images train with their label: all that have one when the source says so (users' data),
    else `labels` (default DEFAULT_LABELS) drawn class-balanced by `seed` (the benchmark protocol)."""
    if dataset.partially_labeled:
        if labels is not None:
            raise UserError(f"{dataset.source}: the data says which images are labeled; --labels applies only to "
                            "fully labeled benchmark data")
        return np.flatnonzero(dataset.y_train != UNLABELED)
    return choose_labeled(dataset.y_train, DEFAULT_LABELS if labels is None else labels, dataset.num_classes, seed)


def content_digests(images: np.ndarray) -> list[bytes]:
    return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest() for image in images]


def test_leaks(dataset: Dataset, labeled: np.ndarray) -> dict:
    """How many test images also appear, pixel for pixel, among the labeled or the other training images:
    a test set that shares images with training overstates accuracy."""
    test = set(content_digests(dataset.x_test))
    if not test:
        return {"test_images_in_labeled": 0, "test_images_in_unlabeled": 0}
    is_labeled = np.zeros(len(dataset.x_train), bool)
    is_labeled[labeled] = True
    found = {True: set(), False: set()}
    for start in range(0, len(dataset.x_train), 10000):  # chunks: a training set read from its file stays there
        chunk = content_digests(np.asarray(dataset.x_train[start:start + 10000]))
        for digest, in_labeled in zip(chunk, is_labeled[start:start + 10000]):
            if digest in test:
                found[bool(in_labeled)].add(digest)
    return {"test_images_in_labeled": len(found[True]), "test_images_in_unlabeled": len(found[False] - found[True])}


def manifest(dataset: Dataset, labeled: np.ndarray, seed: int) -> dict:
    """What fixes a run's data: the dataset's identity and the labeled subset drawn from it."""
    return {
        "dataset": {
            "source": dataset.source,
            "sha256": dataset.checksums,
            "image_shape": list(dataset.image_shape),
            "num_classes": dataset.num_classes,
            "train_size": len(dataset.x_train),
            "unlabeled_size": int(np.sum(dataset.y_train == UNLABELED)),
            "test_size": len(dataset.x_test),
            **dataset.details,
        },
        "class_names": list(dataset.class_names),
        "labeled_by": "source" if dataset.partially_labeled else "seed",
        "labels": len(labeled),
        "seed": seed,
        "per_class": np.bincount(dataset.y_train[labeled], minlength=dataset.num_classes).tolist(),
        "indices": labeled.tolist(),
        "leaks": test_leaks(dataset, labeled),
    }


def describe(manifest: dict) -> str:
    """What `prepare` found, in a few lines: sizes, classes, labels, and what a user must know (skips, leaks)."""
    d = manifest["dataset"]
    names = manifest["class_names"]
    lines = [f"{d['train_size']} training images, {d['test_size']} test images, shape {tuple(d['image_shape'])}; "
             f"{len(names)} classes: {', '.join(names[:12])}" + (", ..." if len(names) > 12 else ""),
             f"{manifest['labels']} labeled images train with their labels "
             + (f"(as the data marks them; per class {manifest['per_class']})" if manifest["labeled_by"] == "source"
                else f"({manifest['per_class'][0]} per class, drawn with seed {manifest['seed']})")
             + f"; the other {d['train_size'] - manifest['labels']} train without"]
    if d.get("resized_from"):
        h, w = d["resized_from"]
        lines.append(f"images brought to {d['image_shape'][0]}x{d['image_shape'][1]} (the labeled images are mostly "
                     f"{h}x{w}); choose another size with --image-size HxW")
    if d.get("skipped"):
        parts = Counter(s.get("part", "unlabeled") for s in d["skipped"])
        lines.append("left out " + ", ".join(f"{n} {part}" for part, n in sorted(parts.items()))
                     + " files that cannot be used (listed in skipped.json)")
    if not d["test_size"]:
        lines.append("no test set: the model will be trained but not evaluated (no test accuracy)")
    leaks = manifest["leaks"]
    if leaks["test_images_in_labeled"] or leaks["test_images_in_unlabeled"]:
        lines.append(f"warning: test images also in training: {leaks['test_images_in_labeled']} among the labeled, "
                     f"{leaks['test_images_in_unlabeled']} among the unlabeled; the test accuracy would overstate "
                     "(publishing is refused unless allowed)")
    return "\n".join(lines)


def load_for_manifest(manifest_: dict) -> Dataset:
    """Reloads the dataset a manifest was made from (with the same options), refusing data that changed since."""
    recorded = manifest_["dataset"]
    options = recorded.get("options", {})
    dataset = load(recorded["source"], **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    if dataset.checksums != recorded["sha256"]:
        raise UserError(f"{dataset.source}: the data changed since the manifest was written (SHA-256 differs)")
    return dataset


def scale(images):
    """uint8 [0, 255] -> float32 [-1, 1], the generator's tanh range."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def batch_indices(n: int, batch_size: int, seed: int, stream: int, start_step: int = 0, rank: int = 0, size: int = 1):
    """Infinite iterator of this worker's example indices, one array per step, from `start_step` on.

    Global position p is example permutation(seed, stream, p // n)[p % n]; worker `rank` of `size`
    takes slice `rank` of each global batch of `batch_size * size` positions.
    """
    permutations = {}
    for step in itertools.count(start_step):
        yield _at(n, seed, stream, (step * size + rank) * batch_size + np.arange(batch_size), permutations)


def balanced_batch_indices(y: np.ndarray, num_classes: int, batch_size: int, seed: int, stream: int,
                           start_step: int = 0, rank: int = 0, size: int = 1):
    """Like `batch_indices`, but every global batch holds each class equally often: global_batch // K examples
    of each, and the remaining global_batch % K go to the next classes in turn (so any K works, and over K
    steps every class is drawn equally). Each class cycles through its own seeded permutation; the batch is
    shuffled before workers slice it. A class's draws so far are a closed form of the step: resumable."""
    base, extra = divmod(batch_size * size, num_classes)
    members = [np.flatnonzero(y == k) for k in range(num_classes)]
    permutations = [{} for _ in range(num_classes)]
    classes = np.arange(num_classes)
    for step in itertools.count(start_step):
        first = step * extra  # the extras so far: positions 0.. of an endless cycle through the classes
        counts = base + ((classes - first) % num_classes < extra)
        drawn = base * step + first // num_classes + (classes < first % num_classes)
        batch = np.concatenate([m[_at(len(m), seed, 1000 * (stream + 1) + k, drawn[k] + np.arange(counts[k]), p)]
                                for k, (m, p) in enumerate(zip(members, permutations))])
        batch = np.random.default_rng([seed, stream, step]).permutation(batch)
        yield batch[rank * batch_size:(rank + 1) * batch_size]


def _at(n: int, seed: int, stream: int, positions: np.ndarray, permutations: dict) -> np.ndarray:
    """The examples at increasing global `positions` of an endless run of seeded permutations of range(n);
    `permutations` caches the epochs in use and forgets those behind."""
    epochs = positions // n
    for epoch in np.unique(epochs):
        if epoch not in permutations:
            permutations[epoch] = np.random.default_rng([seed, stream, epoch]).permutation(n)
    for old in [e for e in permutations if len(epochs) and e < epochs[0]]:
        del permutations[old]
    chosen = np.empty(len(positions), np.int64)
    for epoch in np.unique(epochs):
        chosen[epochs == epoch] = permutations[epoch][positions[epochs == epoch] % n]
    return chosen


def batches(x, y, members: np.ndarray, batch_size: int, seed: int, stream: int, start_step: int = 0, rank: int = 0,
            size: int = 1, balanced_classes: int = 0):
    """Infinite tf.data stream of scaled (images, labels) batches from the rows `members` of `x`, drawn by
    `batch_indices` (or `balanced_batch_indices` over `balanced_classes` classes). Rows are gathered batch by
    batch, so `x` read from its file (sgan.data.rows) or memory-mapped is never copied whole."""
    import tensorflow as tf

    labels = np.zeros(len(x), np.int64) if y is None else y
    if balanced_classes:
        positions = balanced_batch_indices(labels[members], balanced_classes, batch_size, seed, stream, start_step,
                                           rank, size)
    else:
        positions = batch_indices(len(members), batch_size, seed, stream, start_step, rank, size)

    def gather():
        for batch in positions:
            rows = members[batch]
            yield x[rows], labels[rows]

    signature = (tf.TensorSpec([batch_size, *x.shape[1:]], tf.uint8), tf.TensorSpec([batch_size], tf.int64))
    stream_ = tf.data.Dataset.from_generator(gather, output_signature=signature)
    # Two batches ahead, not AUTOTUNE: an autotuned buffer grew over a run, and releasing it at exit took a minute
    # after 3,000 iterations (docs/benchmarks.md, "The main job").
    return stream_.map(lambda images, y_: (scale(images), y_)).prefetch(2)


def validation_size(dataset: Dataset, labeled: np.ndarray, wanted: int) -> tuple[int, int]:
    """(images to hold out for validation, labeled training images outside the labeled subset): `wanted`, or half
    of those when there are fewer; none for users' data, whose labels all train."""
    spare = 0 if dataset.partially_labeled else int(np.sum(dataset.y_train != UNLABELED)) - len(labeled)
    return min(wanted, spare // 2), spare


def split_validation(y: np.ndarray, labeled: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(unlabeled pool, validation) indices: `size` labeled training images outside the labeled subset are held
    out, so accuracy can be watched during training without touching the test set (benchmark data only: users'
    data has no labeled images to spare)."""
    n = len(y)
    candidates = np.setdiff1d(np.flatnonzero(y != UNLABELED), labeled)
    if size > len(candidates):
        raise UserError(f"validation={size} exceeds the {len(candidates)} labeled training images outside the "
                        "labeled subset")
    validation = np.sort(np.random.default_rng([seed, 2]).choice(candidates, size=size, replace=False))
    return np.setdiff1d(np.arange(n), validation), validation


def test_batches(x, batch_size: int = 1000):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).map(scale)
