"""The validated dataset every source produces: images, labels (some unlabeled), an optional test set, and what
fixes its identity. Sources (sgan/sources) build it; everything else reads it."""

from dataclasses import dataclass, field

import numpy as np

from sgan.errors import UserError
from sgan.images import MIN_SIDE

UNLABELED = -1  # the label of a training image that has none


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # uint8 [N, H, W, C], every training image (or sgan.data.rows.Rows: read on demand)
    y_train: np.ndarray  # int64 [N]; UNLABELED where the source gives no label
    x_test: np.ndarray  # may hold no images: then nothing can be evaluated
    y_test: np.ndarray
    num_classes: int
    source: str
    checksums: dict  # what fixes the content: file name -> SHA-256 (or one digest over a listing)
    class_names: tuple = ()
    details: dict = field(default_factory=dict)  # what the source reports for the manifest (options, skipped files)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def partially_labeled(self) -> bool:
        """The source says which images are labeled (users' data), instead of labeling all (benchmarks)."""
        return bool(np.any(self.y_train == UNLABELED))

    @property
    def has_test(self) -> bool:
        return len(self.x_test) > 0


def validated(arrays: dict, names: dict, source: str, checksums: dict, class_names=None, details=None) -> Dataset:
    """A Dataset from x_train, y_train (UNLABELED allowed), x_test, y_test (possibly empty), checked for consistency."""
    images = {}
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or min(x.shape[1:]) == 0:
            raise UserError(f"{names[key]}: images must have shape [N, H, W] or [N, H, W, C], got {x.shape}")
        images[key] = x
    if min(images["x_train"].shape[1:3]) < MIN_SIDE:
        raise UserError(f"{names['x_train']}: images of {images['x_train'].shape[1]}x{images['x_train'].shape[2]} "
                        f"pixels are too small; at least {MIN_SIDE}x{MIN_SIDE} are needed")
    if len(images["x_test"]) and images["x_train"].shape[1:] != images["x_test"].shape[1:]:
        raise UserError(
            f"{names['x_test']}: test images are {images['x_test'].shape[1:]}, "
            f"training images {images['x_train'].shape[1:]}"
        )
    labels = {}
    for key, x_key in (("y_train", "x_train"), ("y_test", "x_test")):
        y = arrays[key]
        if y.ndim != 1 or (len(y) and not np.issubdtype(y.dtype, np.integer)):
            raise UserError(f"{names[key]}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
        if len(y) != len(images[x_key]):
            raise UserError(f"{names[key]}: {len(y)} labels for {len(images[x_key])} images in {names[x_key]}")
        lowest = UNLABELED if key == "y_train" else 0
        if len(y) and y.min() < lowest:
            raise UserError(f"{names[key]}: negative label {y.min()}")
        labels[key] = y.astype(np.int64)
    if not np.any(labels["y_train"] != UNLABELED):
        raise UserError(f"{names['y_train']}: no labeled examples")
    num_classes = len(class_names) if class_names else int(labels["y_train"].max()) + 1
    absent = np.setdiff1d(np.arange(num_classes), labels["y_train"])
    if num_classes < 2 or absent.size:
        missing = f"class {class_names[absent[0]] if class_names else absent[0]} has no examples" if absent.size else ""
        raise UserError(f"{names['y_train']}: labels must cover classes 0..K-1 with K >= 2; "
                        f"{'only one class' if num_classes < 2 else missing}")
    for key in ("y_train", "y_test"):
        if len(labels[key]) and labels[key].max() >= num_classes:
            raise UserError(f"{names[key]}: label {labels[key].max()} out of range "
                            f"(training labels are 0..{num_classes - 1})")
    return Dataset(images["x_train"], labels["y_train"], images["x_test"], labels["y_test"], num_classes, source,
                   checksums, tuple(class_names or (str(k) for k in range(num_classes))), details or {})
