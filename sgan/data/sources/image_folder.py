"""An image folder as users keep it: a few labeled images, many unlabeled ones, maybe a test set.

    DATA/labeled/<class name>/...    PNG or JPEG, any nesting below the class folder
    DATA/unlabeled/...               any nesting, no labels
    DATA/test/<class name>/...       optional; its classes must be among labeled/'s

Class names are the folder names, sorted. Images of any size and mode are brought to one shape (default: the
most common size among the labeled images, scaled down to a longer side of at most DEFAULT_LONGER_SIDE pixels
with its aspect kept, grayscale if they all are), decoded once into a content-addressed
cache of uint8 .npy files that training memory-maps. A bad labeled or test file stops everything (one line
naming it, nothing written); a bad unlabeled file is skipped and listed. The user's files are only read.
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sgan import images
from sgan.data.dataset import UNLABELED, Dataset, validated
from sgan.errors import UserError, writing

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
CACHE_FORMAT = 2  # bump when the decoding changes: old cache entries are then never read
CHUNK = 256  # files per decoding task
# Camera-sized photos train too slowly and need too much memory on a CPU; 32 pixels is the side of the published
# SSL-GAN results on CIFAR-10 and SVHN (time and memory at this size: docs/benchmarks.md, Photos).
DEFAULT_LONGER_SIDE = 32


def default_cache_dir() -> Path:
    return Path(os.environ.get("SGAN_CACHE_DIR", Path.home() / ".cache" / "sgan" / "datasets"))


def load(folder: Path, image_size=None, channels=None, cache_dir=None, listing_sha256=None) -> Dataset:
    """`listing_sha256` (from a manifest): trust a cache entry made from that listing without re-reading the files."""
    folder = folder.resolve()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    listing, class_names = scan(folder)
    shape, common = _shape(folder, listing, image_size, channels)
    digest = listing_sha256 if listing_sha256 and _entry(cache_dir, listing_sha256, shape).is_dir() \
        else _listing_digest(folder, listing)
    entry = _entry(cache_dir, digest, shape)
    if not (entry / "meta.json").is_file():
        with writing(entry):
            _decode_into(entry, folder, listing, shape, digest, class_names)
    meta = json.loads((entry / "meta.json").read_text())
    arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in ("x_train", "x_test")}
    arrays.update({name: np.load(entry / f"{name}.npy") for name in ("y_train", "y_test")})
    names = {"x_train": str(folder / "labeled"), "y_train": str(folder / "labeled"), "x_test": str(folder / "test"),
             "y_test": str(folder / "test")}
    details = {"options": {"image_size": list(shape[:2]), "channels": shape[2], "cache_dir": str(cache_dir),
                           "listing_sha256": digest},
               "cache": str(entry), "files": meta["files"], "skipped": meta["skipped"]}
    if common and common != shape[:2]:
        details["resized_from"] = list(common)
    return validated(arrays, names, str(folder), {"listing": digest}, meta["class_names"], details)


def scan(folder: Path) -> tuple[dict, list]:
    """{part: [(relative path, class index or UNLABELED)]} for labeled/, unlabeled/ and test/, and the class names."""
    labeled_root = folder / "labeled"
    class_dirs = sorted(p for p in labeled_root.iterdir() if p.is_dir())
    if not class_dirs:
        raise UserError(f"{labeled_root}: no class folders (labeled/<class name>/image.png)")
    class_names = [p.name for p in class_dirs]
    listing = {"labeled": [], "unlabeled": [], "test": []}
    for k, class_dir in enumerate(class_dirs):
        files = images.image_files(class_dir)
        if not files:
            raise UserError(f"{class_dir}: empty class (no PNG or JPEG files)")
        listing["labeled"] += [(f.relative_to(folder).as_posix(), k) for f in files]
    unlabeled_root = folder / "unlabeled"
    if not unlabeled_root.is_dir():
        raise UserError(f"{unlabeled_root}: missing (the unlabeled images are what a semi-supervised GAN learns from)")
    listing["unlabeled"] = [(f.relative_to(folder).as_posix(), UNLABELED) for f in images.image_files(unlabeled_root)]
    if not listing["unlabeled"]:
        raise UserError(f"{unlabeled_root}: no PNG or JPEG files")
    test_root = folder / "test"
    if test_root.is_dir():
        for class_dir in sorted(p for p in test_root.iterdir() if p.is_dir()):
            if class_dir.name not in class_names:
                raise UserError(f"{class_dir}: class {class_dir.name!r} is not among labeled/'s classes "
                                f"({', '.join(class_names)})")
            k = class_names.index(class_dir.name)
            listing["test"] += [(f.relative_to(folder).as_posix(), k) for f in images.image_files(class_dir)]
    return listing, class_names


def _shape(folder: Path, listing: dict, image_size, channels) -> tuple[tuple, tuple | None]:
    """((H, W, C), the labeled images' most common (H, W)): as asked, else that size brought to `trainable_size`,
    and 1 channel if all of them are gray."""
    if image_size and channels:
        return (*image_size, channels), None
    sizes, modes = Counter(), set()
    for relative, _ in listing["labeled"]:
        with _open(folder / relative, strict=True) as image:
            sizes[images.upright_size(image)] += 1
            modes.add(image.mode)
    width, height = sizes.most_common(1)[0][0]
    size = image_size or trainable_size(height, width)
    return (*size, channels or (1 if modes <= GRAY_MODES else 3)), (height, width)


def trainable_size(height: int, width: int, longer: int = DEFAULT_LONGER_SIDE) -> tuple:
    """(H, W) with the longer side at most `longer`, the aspect kept, both sides multiples of 4 (the generator
    upsamples twice) and at least 8: 480x640 -> 24x32; 28x28 stays 28x28."""
    factor = min(1.0, longer / max(height, width))
    return tuple(max(images.MIN_SIDE, 4 * round(side * factor / 4)) for side in (height, width))


def _open(path, strict: bool):
    """The image at `path`, header read; a bad labeled or test file (`strict`) is the user's one-line error."""
    try:
        return images.open_image(path, images.FILE_MAX_PIXELS)
    except Exception as e:  # noqa: BLE001 - any failure to read a header is a bad file
        if strict:
            raise UserError(f"{path}: not a readable PNG or JPEG image ({e})") from None
        raise


def _listing_digest(folder: Path, listing: dict) -> str:
    """SHA-256 over every file's part, relative path and content SHA-256: the dataset's identity."""
    files = [relative for part in ("labeled", "unlabeled", "test") for relative, _ in listing[part]]
    with _pool() as pool:
        sums = list(tqdm(pool.map(_sha256, [folder / f for f in files], chunksize=CHUNK), total=len(files),
                         desc="sgan prepare: hashing", unit="file", mininterval=1))
    listing["sha256"] = dict(zip(files, sums))
    digest = hashlib.sha256()
    for relative, checksum in zip(files, sums):
        digest.update(f"{relative}\0{checksum}\n".encode())
    return digest.hexdigest()


def _pool() -> ProcessPoolExecutor:
    """Decoding on every core; spawned, not forked, since the caller may hold TensorFlow's threads."""
    return ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("spawn"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(cache_dir: Path, digest: str, shape: tuple) -> Path:
    return cache_dir / hashlib.sha256(f"{CACHE_FORMAT}:{digest}:{shape}".encode()).hexdigest()[:32]


def _decode_into(entry: Path, folder: Path, listing: dict, shape: tuple, digest: str, class_names: list):
    """Decodes every image into a staging folder renamed into place whole; errors leave nothing behind."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
    pool = _pool()
    try:
        arrays, skipped = {}, []
        for part, strict in (("labeled", True), ("test", True), ("unlabeled", False)):  # strict parts fail fast
            files = listing[part]
            x = _new_array(staging / f"{part}.npy", (len(files), *shape))
            ok = np.ones(len(files), bool)
            chunks = [[str(folder / f) for f, _ in files[i:i + CHUNK]] for i in range(0, len(files), CHUNK)]
            with tqdm(total=len(files), desc=f"sgan prepare: decoding {part}", unit="image", mininterval=1,
                      disable=not files) as progress:
                for i, (batch, errors) in enumerate(pool.map(_decode_chunk, chunks, [shape] * len(chunks))):
                    start = i * CHUNK
                    x[start:start + len(batch)] = batch
                    for offset, reason in errors:
                        if strict:
                            raise UserError(f"{folder / files[start + offset][0]}: not a readable PNG or JPEG image "
                                            f"({reason})")
                        ok[start + offset] = False
                        skipped.append({"file": files[start + offset][0], "reason": reason})
                    progress.update(len(batch))
            arrays[part] = (x, np.array([k for _, k in files], np.int64), ok)
        ok = arrays["unlabeled"][2]
        if not ok.any():
            raise UserError(f"{folder / 'unlabeled'}: none of its {len(ok)} files is a readable PNG or JPEG image")
        _write_training_set(staging, arrays)
        os.replace(staging / "test.npy", staging / "x_test.npy")
        np.save(staging / "y_test.npy", arrays["test"][1])
        for part in ("labeled", "unlabeled"):
            (staging / f"{part}.npy").unlink()
        files = [{"file": f, "sha256": listing["sha256"][f]} for part in ("labeled", "unlabeled", "test")
                 for f, _ in listing[part]]
        meta = {"format": CACHE_FORMAT, "source": str(folder), "listing_sha256": digest, "image_shape": list(shape),
                "class_names": class_names, "skipped": skipped, "files": len(files)}
        (staging / "files.json").write_text(json.dumps(files))  # every source file's SHA-256
        kept = np.flatnonzero(ok)
        (staging / "unlabeled.json").write_text(json.dumps([listing["unlabeled"][i][0] for i in kept]))
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.rename(staging, entry)
        except OSError:  # another process (a second worker on this host) finished the same entry first
            if not (entry / "meta.json").is_file():
                raise
    finally:
        pool.shutdown(cancel_futures=True)
        shutil.rmtree(staging, ignore_errors=True)


def _write_training_set(staging: Path, arrays: dict):
    """x_train.npy: the labeled images, then the readable unlabeled ones; y_train.npy: their labels or UNLABELED."""
    (x_labeled, y_labeled, _), (x_unlabeled, y_unlabeled, ok) = arrays["labeled"], arrays["unlabeled"]
    keep = np.flatnonzero(ok)
    x = _new_array(staging / "x_train.npy", (len(x_labeled) + len(keep), *x_labeled.shape[1:]))
    x[:len(x_labeled)] = x_labeled
    for start in range(0, len(keep), 10000):
        x[len(x_labeled) + start:len(x_labeled) + start + 10000] = x_unlabeled[keep[start:start + 10000]]
    x.flush()
    np.save(staging / "y_train.npy", np.concatenate([y_labeled, y_unlabeled[keep]]))


def _new_array(path: Path, shape: tuple) -> np.ndarray:
    """A uint8 .npy memory map whose blocks are reserved now: a full disk is an error here, not a SIGBUS when a
    page of the map is written later."""
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
    return x


def _decode_chunk(paths: list, shape: tuple) -> tuple[np.ndarray, list]:
    """(images [n, H, W, C], [(offset, reason)] for the files that could not be decoded)."""
    batch, errors = np.zeros((len(paths), *shape), np.uint8), []
    for i, path in enumerate(paths):
        try:
            with _open(path, strict=False) as image:
                batch[i] = images.to_shape(image, shape)
        except Exception as e:  # noqa: BLE001 - a bad file is reported, whatever the decoder raised
            errors.append((i, f"{type(e).__name__}: {str(e).replace(repr(path), 'the file')}"))
    return batch, errors
