"""An .npz file: fully labeled (`x_train, y_train, x_test, y_test`, the benchmark protocol) or partially labeled
(`x_labeled, y_labeled, x_unlabeled`, optional `x_test, y_test`), with optional `class_names` in either."""

import hashlib
from pathlib import Path

import numpy as np

from sgan.data.dataset import UNLABELED, Dataset, validated
from sgan.errors import UserError

FULL = ("x_train", "y_train", "x_test", "y_test")
PARTIAL = ("x_labeled", "y_labeled", "x_unlabeled")


def load(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            arrays = {k: npz[k] for k in keys & {*FULL, *PARTIAL, "class_names"}}
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e})") from None
    if set(PARTIAL) <= keys:
        arrays = _partial(path, arrays)
    elif missing := [k for k in FULL if k not in keys]:
        raise UserError(f"{path}: missing arrays {', '.join(missing)} (needs {', '.join(FULL)}, "
                        f"or {', '.join(PARTIAL)} with optional x_test, y_test)")
    for key in ("x_train", "x_test"):
        if arrays[key].dtype != np.uint8:
            raise UserError(f"{path}: {key} has dtype {arrays[key].dtype}; images must be uint8 (0-255)")
    class_names = arrays.pop("class_names", None)
    if class_names is not None and class_names.dtype.kind not in "US":
        raise UserError(f"{path}: class_names must be an array of strings, got {class_names.dtype}")
    checksums = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    names = {k: f"{path}[{k}]" for k in FULL}
    return validated(arrays, names, str(path.resolve()), checksums,
                     None if class_names is None else [str(c) for c in class_names])


def _partial(path: Path, arrays: dict) -> dict:
    """Labeled and unlabeled images as one training set, the unlabeled marked UNLABELED."""
    x_labeled, y_labeled, x_unlabeled = (arrays[k] for k in PARTIAL)
    if len(x_unlabeled) == 0:
        raise UserError(f"{path}[x_unlabeled]: no unlabeled images")
    if x_labeled.shape[1:] != x_unlabeled.shape[1:]:
        raise UserError(f"{path}[x_unlabeled]: images are {x_unlabeled.shape[1:]}, labeled ones {x_labeled.shape[1:]}")
    if y_labeled.ndim != 1 or len(y_labeled) != len(x_labeled):
        raise UserError(f"{path}[y_labeled]: needs one label per labeled image ({len(x_labeled)}), got {y_labeled.shape}")
    if len(y_labeled) and y_labeled.min() < 0:  # -1 would silently mean "unlabeled" once merged
        raise UserError(f"{path}[y_labeled]: negative label {y_labeled.min()}")
    for key in ("x_labeled", "x_unlabeled"):
        if arrays[key].dtype != np.uint8:
            raise UserError(f"{path}: {key} has dtype {arrays[key].dtype}; images must be uint8 (0-255)")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise UserError(f"{path}: x_test and y_test come together")
    empty_test = (np.zeros((0, *x_labeled.shape[1:]), np.uint8), np.zeros(0, np.int64))
    x_test, y_test = (arrays["x_test"], arrays["y_test"]) if "x_test" in arrays else empty_test
    return {"x_train": np.concatenate([x_labeled, x_unlabeled]),
            "y_train": np.concatenate([y_labeled.astype(np.int64), np.full(len(x_unlabeled), UNLABELED)]),
            "x_test": x_test, "y_test": y_test, **({"class_names": arrays["class_names"]}
                                                    if "class_names" in arrays else {})}
