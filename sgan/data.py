"""Datasets: loading and validating IDX or .npz files, the labeled subset, and tf.data input pipelines.

Batches are a pure function of (seed, stream, step), so resuming at step t needs only t, and workers
take disjoint slices of the same global order.
"""

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgan import idx
from sgan.errors import UserError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # uint8 [N, H, W, C]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    checksums: dict  # file name -> SHA-256 of its decompressed content

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def load(source) -> Dataset:
    """Loads a folder of the four MNIST-format IDX files (gzip or raw) or an .npz file, validated."""
    path = Path(source)
    if path.is_dir():
        return _load_idx_dir(path)
    if path.suffix == ".npz" and path.is_file():
        return _load_npz(path)
    raise UserError(f"{path}: not a folder of IDX files or an .npz file")


def _load_idx_dir(folder: Path) -> Dataset:
    expected_sums = _read_sha256sums(folder)
    arrays, names, checksums = {}, {}, {}
    for key, stem in IDX_FILES.items():
        candidates = [folder / f"{stem}.gz", folder / stem]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise UserError(f"{folder}: missing {stem}.gz (or {stem})")
        data = idx.read_bytes(path)
        checksums[stem] = hashlib.sha256(data).hexdigest()
        if stem in expected_sums and expected_sums[stem] != checksums[stem]:
            raise UserError(f"{path}: SHA-256 of the content does not match {folder / 'SHA256SUMS'}")
        arrays[key], names[key] = idx.parse(data, path), str(path)
    return _validated(arrays, names, str(folder.resolve()), checksums)


def _read_sha256sums(folder: Path) -> dict:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    lines = (line.split() for line in sums.read_text().splitlines() if line.strip())
    return {name.lstrip("*"): digest for digest, name in lines}


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise UserError(f"{path}: missing arrays {', '.join(missing)} (needs {', '.join(NPZ_KEYS)})")
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e})") from None
    for key in ("x_train", "x_test"):
        if arrays[key].dtype != np.uint8:
            raise UserError(f"{path}: {key} has dtype {arrays[key].dtype}; images must be uint8 (0-255)")
    checksums = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    names = {k: f"{path}[{k}]" for k in NPZ_KEYS}
    return _validated(arrays, names, str(path.resolve()), checksums)


def _validated(arrays: dict, names: dict, source: str, checksums: dict) -> Dataset:
    images = {}
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or min(x.shape[1:]) == 0:
            raise UserError(f"{names[key]}: images must have shape [N, H, W] or [N, H, W, C], got {x.shape}")
        images[key] = x
    if images["x_train"].shape[1:] != images["x_test"].shape[1:]:
        raise UserError(
            f"{names['x_test']}: test images are {images['x_test'].shape[1:]}, "
            f"training images {images['x_train'].shape[1:]}"
        )
    labels = {}
    for key, x_key in (("y_train", "x_train"), ("y_test", "x_test")):
        y = arrays[key]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{names[key]}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
        if len(y) != len(images[x_key]):
            raise UserError(f"{names[key]}: {len(y)} labels for {len(images[x_key])} images in {names[x_key]}")
        if len(y) == 0:
            raise UserError(f"{names[key]}: no examples")
        if y.min() < 0:
            raise UserError(f"{names[key]}: negative label {y.min()}")
        labels[key] = y.astype(np.int64)
    num_classes = int(labels["y_train"].max()) + 1
    absent = np.setdiff1d(np.arange(num_classes), labels["y_train"])
    if num_classes < 2 or absent.size:
        raise UserError(
            f"{names['y_train']}: labels must cover classes 0..K-1 with K >= 2; "
            f"{'only one class' if num_classes < 2 else f'class {absent[0]} has no examples'}"
        )
    if labels["y_test"].max() >= num_classes:
        raise UserError(
            f"{names['y_test']}: label {labels['y_test'].max()} out of range (training labels are 0..{num_classes - 1})"
        )
    return Dataset(
        images["x_train"], labels["y_train"], images["x_test"], labels["y_test"], num_classes, source, checksums
    )


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


def manifest(dataset: Dataset, labeled: np.ndarray, seed: int) -> dict:
    """What fixes a run's data: the dataset's identity and the labeled subset drawn from it."""
    return {
        "dataset": {
            "source": dataset.source,
            "sha256": dataset.checksums,
            "image_shape": list(dataset.image_shape),
            "num_classes": dataset.num_classes,
            "train_size": len(dataset.x_train),
            "test_size": len(dataset.x_test),
        },
        "labels": len(labeled),
        "seed": seed,
        "per_class": np.bincount(dataset.y_train[labeled], minlength=dataset.num_classes).tolist(),
        "indices": labeled.tolist(),
    }


def load_for_manifest(manifest_: dict) -> Dataset:
    """Reloads the dataset a manifest was made from, refusing data that changed since."""
    dataset = load(manifest_["dataset"]["source"])
    if dataset.checksums != manifest_["dataset"]["sha256"]:
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
        position = (step * size + rank) * batch_size + np.arange(batch_size)
        epochs = position // n
        for epoch in np.unique(epochs):
            if epoch not in permutations:
                permutations[epoch] = np.random.default_rng([seed, stream, epoch]).permutation(n)
        yield np.concatenate([permutations[e][position[epochs == e] % n] for e in np.unique(epochs)])
        for old in [e for e in permutations if e < epochs[0]]:
            del permutations[old]


def balanced_batch_indices(y: np.ndarray, num_classes: int, batch_size: int, seed: int, stream: int,
                           start_step: int = 0, rank: int = 0, size: int = 1):
    """Like `batch_indices`, but every global batch holds the same number of examples of each class,
    each class cycling through its own seeded permutation, and the batch shuffled before workers slice it."""
    global_batch = batch_size * size
    members = [np.flatnonzero(y == k) for k in range(num_classes)]
    per_class = [batch_indices(len(m), global_batch // num_classes, seed, 1000 * (stream + 1) + k, start_step)
                 for k, m in enumerate(members)]
    for step in itertools.count(start_step):
        batch = np.concatenate([m[next(positions)] for m, positions in zip(members, per_class)])
        batch = np.random.default_rng([seed, stream, step]).permutation(batch)
        yield batch[rank * batch_size:(rank + 1) * batch_size]


def batches(x, y, batch_size: int, seed: int, stream: int, start_step: int = 0, rank: int = 0, size: int = 1,
            balanced_classes: int = 0):
    """Infinite tf.data stream of scaled (images, labels) batches drawn by `batch_indices`
    (or `balanced_batch_indices` over `balanced_classes` classes)."""
    import tensorflow as tf

    x_const = tf.constant(x)
    y_const = tf.constant(np.zeros(len(x), np.int64) if y is None else y)
    if balanced_classes:
        if batch_size * size % balanced_classes:
            raise UserError(f"a class-balanced global batch ({batch_size} x {size} workers) must be a multiple of "
                            f"the number of classes ({balanced_classes})")
        generator = balanced_batch_indices(y, balanced_classes, batch_size, seed, stream, start_step, rank, size)
    else:
        generator = batch_indices(len(x), batch_size, seed, stream, start_step, rank, size)
    indices = tf.data.Dataset.from_generator(lambda: generator, output_signature=tf.TensorSpec([batch_size], tf.int64))
    return indices.map(lambda i: (scale(tf.gather(x_const, i)), tf.gather(y_const, i))).prefetch(tf.data.AUTOTUNE)


def split_validation(n: int, labeled: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(unlabeled pool, validation) indices: `size` training images outside the labeled subset are held out,
    so accuracy can be watched during training without touching the test set or using extra labels."""
    candidates = np.setdiff1d(np.arange(n), labeled)
    if size > len(candidates):
        raise UserError(f"validation={size} exceeds the {len(candidates)} unlabeled training images")
    validation = np.sort(np.random.default_rng([seed, 2]).choice(candidates, size=size, replace=False))
    return np.setdiff1d(np.arange(n), validation), validation


def test_batches(x, batch_size: int = 1000):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).map(scale)
