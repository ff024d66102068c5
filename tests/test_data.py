import gzip
import hashlib

import numpy as np
import pytest
from conftest import write_idx_dataset

from sgan import data
from sgan.data import idx
from sgan.data.rows import Rows
from sgan.errors import UserError


def test_load_idx_folder(idx_dir):
    dataset = data.load(idx_dir)
    assert dataset.x_train.shape == (200, 28, 28, 1) and dataset.x_test.shape == (100, 28, 28, 1)
    assert dataset.x_train.dtype == np.uint8 and dataset.num_classes == 10
    content = gzip.decompress((idx_dir / "train-labels-idx1-ubyte.gz").read_bytes())
    assert dataset.checksums["train-labels-idx1-ubyte"] == hashlib.sha256(content).hexdigest()


def test_raw_and_gzip_give_same_checksums(tmp_path):
    raw = data.load(write_idx_dataset(tmp_path / "raw", compress=False))
    gz = data.load(write_idx_dataset(tmp_path / "gz", compress=True))
    assert raw.checksums == gz.checksums


def test_load_npz_rgb(rgb_npz):
    dataset = data.load(rgb_npz)
    assert dataset.image_shape == (32, 32, 3) and dataset.num_classes == 10
    assert set(dataset.checksums) == {"rgb.npz"}


def _replace(folder, name, array):
    (folder / f"{name}.gz").write_bytes(gzip.compress(idx.encode(array)))


def test_label_count_mismatch(idx_dir):
    _replace(idx_dir, "train-labels-idx1-ubyte", np.arange(150) % 10)
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte\.gz: 150 labels for 200 images"):
        data.load(idx_dir)


def test_test_label_out_of_range(idx_dir):
    _replace(idx_dir, "t10k-labels-idx1-ubyte", np.full(100, 12))
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte\.gz: label 12 out of range \(training labels are 0\.\.9\)"):
        data.load(idx_dir)


def test_class_without_examples(idx_dir):
    labels = np.arange(200) % 10
    labels[labels == 3] = 4
    _replace(idx_dir, "train-labels-idx1-ubyte", labels)
    with pytest.raises(UserError, match="class 3 has no examples"):
        data.load(idx_dir)


def test_image_shapes_disagree(idx_dir):
    _replace(idx_dir, "t10k-images-idx3-ubyte", np.zeros((100, 32, 32), np.uint8))
    with pytest.raises(UserError, match=r"test images are \(32, 32, 1\), training images \(28, 28, 1\)"):
        data.load(idx_dir)


def test_missing_file(idx_dir):
    (idx_dir / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError, match="missing t10k-images-idx3-ubyte.gz"):
        data.load(idx_dir)


def test_sha256sums_mismatch(idx_dir):
    (idx_dir / "SHA256SUMS").write_text("0" * 64 + "  train-images-idx3-ubyte\n")
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\.gz: SHA-256 of the content does not match"):
        data.load(idx_dir)


def test_npz_missing_array_and_bad_dtype(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.arange(4) % 2)
    with pytest.raises(UserError, match="missing arrays x_test, y_test"):
        data.load(path)
    np.savez(path, x_train=np.zeros((4, 8, 8)), y_train=np.arange(4) % 2, x_test=np.zeros((2, 8, 8)), y_test=[0, 1])
    with pytest.raises(UserError, match="x_train has dtype float64; images must be uint8"):
        data.load(path)


def test_not_a_dataset(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match=r"not an image folder \(with labeled/\), a folder of IDX files, or an .npz file"):
        data.load(tmp_path / "x.txt")


def test_labeled_subset_is_balanced_and_reproducible():
    y = np.random.default_rng(1).integers(0, 10, size=5000)
    chosen = data.choose_labeled(y, 100, 10, seed=7)
    assert len(chosen) == 100 and len(set(chosen)) == 100
    assert np.bincount(y[chosen], minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(chosen, data.choose_labeled(y, 100, 10, seed=7))
    assert not np.array_equal(chosen, data.choose_labeled(y, 100, 10, seed=8))


def test_labeled_subset_errors():
    y = np.arange(50) % 10
    with pytest.raises(UserError, match="labels=15 must be a positive multiple of the number of classes"):
        data.choose_labeled(y, 15, 10, 0)
    with pytest.raises(UserError, match="labels=100 needs 10 examples of class 0, the data has 5"):
        data.choose_labeled(y, 100, 10, 0)


def test_manifest_records_subset_and_checksums(idx_dir):
    dataset = data.load(idx_dir)
    chosen = data.choose_labeled(dataset.y_train, 20, 10, seed=3)
    manifest = data.manifest(dataset, chosen, seed=3)
    assert manifest["indices"] == chosen.tolist() and manifest["per_class"] == [2] * 10
    assert manifest["seed"] == 3 and manifest["dataset"]["sha256"] == dataset.checksums
    assert data.load_for_manifest(manifest).checksums == dataset.checksums
    _replace(idx_dir, "t10k-labels-idx1-ubyte", np.arange(100)[::-1] % 10)
    with pytest.raises(UserError, match="the data changed since the manifest was written"):
        data.load_for_manifest(manifest)


def _take(iterator, k):
    return [next(iterator) for _ in range(k)]


def test_batch_order_resumes_and_covers_each_epoch():
    full = _take(data.batch_indices(50, 10, seed=1, stream=0), 12)
    resumed = _take(data.batch_indices(50, 10, seed=1, stream=0, start_step=7), 5)
    for a, b in zip(full[7:], resumed):
        np.testing.assert_array_equal(a, b)
    first_epoch = np.concatenate(full[:5])
    assert sorted(first_epoch) == list(range(50))
    assert not np.array_equal(first_epoch, np.concatenate(full[5:10]))  # reshuffled each epoch


def test_workers_take_disjoint_slices_of_the_global_batch():
    single = _take(data.batch_indices(60, 8, seed=2, stream=1), 6)
    workers = [_take(data.batch_indices(60, 4, seed=2, stream=1, rank=r, size=2), 6) for r in range(2)]
    for step in range(6):
        np.testing.assert_array_equal(np.concatenate([workers[0][step], workers[1][step]]), single[step])


def test_tf_batches_are_scaled(idx_dir):
    dataset = data.load(idx_dir)
    x, y = next(iter(data.batches(dataset.x_train, dataset.y_train, np.arange(len(dataset.x_train)), 16, seed=0, stream=0)))
    assert x.shape == (16, 28, 28, 1) and x.dtype.name == "float32" and y.shape == (16,)
    assert -1.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0


def test_balanced_batches_hold_every_class_equally_and_resume():
    y = np.repeat(np.arange(10), [3, 5, 2, 7, 4, 6, 2, 3, 9, 9])
    full = _take(data.balanced_batch_indices(y, 10, 20, seed=3, stream=0), 8)
    for batch in full:
        assert np.bincount(y[batch], minlength=10).tolist() == [2] * 10
    resumed = _take(data.balanced_batch_indices(y, 10, 20, seed=3, stream=0, start_step=5), 3)
    for a, b in zip(full[5:], resumed):
        np.testing.assert_array_equal(a, b)
    workers = [_take(data.balanced_batch_indices(y, 10, 10, seed=3, stream=0, rank=r, size=2), 8) for r in range(2)]
    for step in range(8):
        np.testing.assert_array_equal(np.concatenate([workers[0][step], workers[1][step]]), full[step])


@pytest.mark.parametrize("classes", [2, 3, 7, 37])
def test_balanced_batches_work_for_any_class_count(classes):
    """20 does not divide by 3, 7 or 37 (nor 37 into 20): the remainder rotates through the classes."""
    y = np.arange(classes * 3 + 1) % classes  # uneven class sizes
    full = _take(data.balanced_batch_indices(y, classes, 20, seed=3, stream=0), 2 * classes)
    counts = np.array([np.bincount(y[batch], minlength=classes) for batch in full])
    assert counts.sum(axis=1).tolist() == [20] * len(full)
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()  # as even as the batch allows
    for window in (counts[:classes], counts[classes:]):  # over K steps, every class drawn equally
        assert window.sum(axis=0).tolist() == [20] * classes
    resumed = _take(data.balanced_batch_indices(y, classes, 20, seed=3, stream=0, start_step=classes + 1), 3)
    for a, b in zip(full[classes + 1:], resumed):
        np.testing.assert_array_equal(a, b)
    workers = [_take(data.balanced_batch_indices(y, classes, 10, seed=3, stream=0, rank=r, size=2), len(full))
               for r in range(2)]
    for step, batch in enumerate(full):
        np.testing.assert_array_equal(np.concatenate([workers[0][step], workers[1][step]]), batch)


def test_validation_split_is_held_out_from_labels_and_unlabeled_pool():
    labeled = np.array([0, 5, 9])
    unlabeled, validation = data.split_validation(np.arange(20) % 10, labeled, 6, seed=1)
    assert len(validation) == 6 and not set(validation) & set(labeled)
    assert sorted(np.concatenate([unlabeled, validation])) == list(range(20))
    np.testing.assert_array_equal(validation, data.split_validation(np.arange(20) % 10, labeled, 6, seed=1)[1])
    with pytest.raises(UserError, match="validation=18 exceeds the 17 labeled training images outside"):
        data.split_validation(np.arange(20) % 10, labeled, 18, seed=1)



def test_rows_read_through_the_file_as_numpy_indexes_an_array(tmp_path):
    """What training, export and the labeling page ask of a prepared training set: rows by index (repeated,
    negative, unsorted, boolean), slices as views, whole arrays; a file cut short is one error, not wrong pixels."""
    x = np.random.default_rng(0).integers(0, 256, (1000, 5, 4, 3), dtype=np.uint8)
    rows = Rows.created(tmp_path / "x.npy", x.shape)
    for start in range(0, 1000, 300):
        rows.write(start, x[start:start + 300])
    rows.sync()
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), x)  # a plain .npy file
    rows, block = Rows.opened(tmp_path / "x.npy"), Rows.BLOCK_BYTES
    assert (rows.shape, rows.ndim, len(rows), rows.dtype) == (x.shape, 4, 1000, np.uint8)
    chosen = np.random.default_rng(1).integers(-1000, 1000, (7, 30))
    for key in (chosen, [5, 5, 4, 999, 0], np.arange(1000) % 3 == 0, np.array([], np.int64), 17, -1):
        np.testing.assert_array_equal(rows[key], x[key])
    view = rows[100:400]
    assert isinstance(view, Rows) and view.shape == (300, 5, 4, 3)  # nothing read yet
    np.testing.assert_array_equal(view[[0, 299, 7]], x[100:400][[0, 299, 7]])
    np.testing.assert_array_equal(np.asarray(view), x[100:400])
    np.testing.assert_array_equal(rows[10:900:7], x[10:900:7])
    try:
        Rows.BLOCK_BYTES = 1000  # reads cut into blocks of rows join up
        np.testing.assert_array_equal(np.asarray(Rows.opened(tmp_path / "x.npy")), x)
    finally:
        Rows.BLOCK_BYTES = block
    with pytest.raises(IndexError):
        rows[[1000]]
    with open(tmp_path / "x.npy", "r+b") as f:
        f.truncate(rows.offset + 500 * rows.row)
    with pytest.raises(UserError, match="shorter than its header"):
        rows[[10, 700]]
