"""The four MNIST-format IDX files (gzip or raw), every image labeled: the benchmark protocol's source."""

import hashlib
from pathlib import Path

from sgan.data import idx
from sgan.data.dataset import Dataset, validated
from sgan.errors import UserError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def files(folder: Path) -> dict:
    """{array name: its IDX file}, gzip or raw; the first one missing is the error."""
    found = {}
    for key, stem in IDX_FILES.items():
        path = next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)
        if path is None:
            raise UserError(f"{folder}: missing {stem}.gz (or {stem})")
        found[key] = path
    return found


def load(folder: Path) -> Dataset:
    expected_sums = _read_sha256sums(folder)
    arrays, names, checksums = {}, {}, {}
    for key, path in files(folder).items():
        stem = IDX_FILES[key]
        data = idx.read_bytes(path)
        checksums[stem] = hashlib.sha256(data).hexdigest()
        if stem in expected_sums and expected_sums[stem] != checksums[stem]:
            raise UserError(f"{path}: SHA-256 of the content does not match {folder / 'SHA256SUMS'}")
        arrays[key], names[key] = idx.parse(data, path), str(path)
    return validated(arrays, names, str(folder.resolve()), checksums)


def _read_sha256sums(folder: Path) -> dict:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    lines = (line.split() for line in sums.read_text().splitlines() if line.strip())
    return {name.lstrip("*"): digest for digest, name in lines}
