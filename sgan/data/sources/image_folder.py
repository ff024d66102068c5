"""An image folder as users keep it: a few labeled images, many unlabeled ones, maybe a test set.

    DATA/labeled/<class name>/...    PNG, JPEG, WebP, AVIF or HEIC, any nesting below the class folder
    DATA/unlabeled/...               any nesting, no labels
    DATA/test/<class name>/...       optional; its classes must be among labeled/'s

Class names are the folder names, sorted. Images of any size and mode are brought to one shape (default: the
most common size among the labeled images, scaled down to a longer side of at most DEFAULT_LONGER_SIDE pixels
with its aspect kept, grayscale if they all are), decoded once into a content-addressed cache of uint8 .npy files
that training reads a batch at a time (sgan.data.rows). Every labeled or test file that cannot be used is named in
one error (with its reason; nothing is written), unless `skip_bad`: then they are left out and listed, as a bad
unlabeled file always is. The user's files are only read.
"""

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import threading
import time
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from operator import itemgetter
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError
from tqdm import tqdm

from sgan import atomic, images
from sgan.data.dataset import UNLABELED, Dataset, validated
from sgan.data.rows import Rows
from sgan.errors import UserError, no_space, writing

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
CACHE_FORMAT = 2  # bump when the decoding changes: old cache entries are then never read
CHUNK = 256  # files per decoding task
RECORD_EVERY_S = 2.0  # how often the chunks decoded are recorded, for a killed prepare to go on from
# Camera-sized photos train too slowly and need too much memory on a CPU; 32 pixels is the side of the published
# SSL-GAN results on CIFAR-10 and SVHN (time and memory at this size: docs/benchmarks.md, Photos).
DEFAULT_LONGER_SIDE = 32


def default_cache_dir() -> Path:
    return Path(os.environ.get("SGAN_CACHE_DIR", Path.home() / ".cache" / "sgan" / "datasets"))


def load(folder: Path, image_size=None, channels=None, cache_dir=None, listing_sha256=None,
         skip_bad: bool = False) -> Dataset:
    """`listing_sha256` (from a manifest): trust a cache entry made from that listing without re-reading the files.
    `skip_bad`: leave out the labeled and test files that cannot be used, instead of refusing the folder."""
    folder = folder.resolve()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    listing, class_names = scan(folder)
    shape, common = _shape(folder, listing, image_size, channels)
    digest = listing_sha256 if listing_sha256 and _entry(cache_dir, listing_sha256, shape).is_dir() \
        else _listing_digest(folder, listing)
    entry = _entry(cache_dir, digest, shape)
    if not (entry / "meta.json").is_file():
        with writing(entry):
            _decode_into(entry, folder, listing, shape, digest, class_names, skip_bad)
    meta = json.loads((entry / "meta.json").read_text())
    if (bad := [s for s in meta["skipped"] if s.get("part", "unlabeled") != "unlabeled"]) and not skip_bad:
        raise _unusable(folder, bad)  # the cached entry was made with skip_bad
    arrays = {"x_train": Rows.opened(entry / "x_train.npy"), "x_test": np.load(entry / "x_test.npy", mmap_mode="r")}
    arrays.update({name: np.load(entry / f"{name}.npy") for name in ("y_train", "y_test")})
    names = {"x_train": str(folder / "labeled"), "y_train": str(folder / "labeled"), "x_test": str(folder / "test"),
             "y_test": str(folder / "test")}
    details = {"options": {"image_size": list(shape[:2]), "channels": shape[2], "cache_dir": str(cache_dir),
                           "listing_sha256": digest, **({"skip_bad": True} if skip_bad else {})},
               "cache": str(entry), "files": meta["files"], "skipped": meta["skipped"]}
    if common and common != shape[:2]:
        details["resized_from"] = list(common)
    return validated(arrays, names, str(folder), {"listing": digest}, meta["class_names"], details)


def scan(folder: Path) -> tuple[dict, list]:
    """{part: [(relative path, class index or UNLABELED)]} for labeled/, unlabeled/ and test/, with "unusable":
    [(part, relative path, reason)] for what cannot even be listed; and the class names."""
    labeled_root = folder / "labeled"
    class_dirs = sorted(p for p in labeled_root.iterdir() if p.is_dir())
    if not class_dirs:
        raise UserError(f"{labeled_root}: no class folders (labeled/<class name>/image.png)")
    class_names = [p.name for p in class_dirs]
    listing = {"labeled": [], "unlabeled": [], "test": [], "unusable": []}

    def add(part: str, root: Path, label: int) -> int:
        files, problems = images.listed(root)
        listing[part] += [(f.relative_to(folder).as_posix(), label) for f in files]
        listing["unusable"] += [(part, images.shown(p.relative_to(folder)), reason) for p, reason in problems]
        return len(files) + len(problems)

    for k, class_dir in enumerate(class_dirs):
        if not add("labeled", class_dir, k):
            raise UserError(f"{class_dir}: empty class (no {images.NAMES} files)")
    unlabeled_root = folder / "unlabeled"
    if not unlabeled_root.is_dir():
        raise UserError(f"{unlabeled_root}: missing (the unlabeled images are what a semi-supervised GAN learns from)")
    if not add("unlabeled", unlabeled_root, UNLABELED):
        raise UserError(f"{unlabeled_root}: no {images.NAMES} files")
    test_root = folder / "test"
    if test_root.is_dir():
        for class_dir in sorted(p for p in test_root.iterdir() if p.is_dir()):
            if class_dir.name not in class_names:
                raise UserError(f"{class_dir}: class {class_dir.name!r} is not among labeled/'s classes "
                                f"({', '.join(class_names)})")
            add("test", class_dir, class_names.index(class_dir.name))
    return listing, class_names


def _unusable(folder: Path, bad: list) -> UserError:
    """Every labeled or test file that cannot be used, in one error: a user fixes them all in one go."""
    return UserError(f"{len(bad)} labeled or test files cannot be used, so nothing was prepared (fix or remove them, "
                     "or --skip-bad to prepare without them):\n"
                     + "\n".join(f"  {folder / b['file']}: {b['reason']}" for b in sorted(bad, key=itemgetter("file"))))


def _shape(folder: Path, listing: dict, image_size, channels) -> tuple[tuple, tuple | None]:
    """((H, W, C), the labeled images' most common (H, W)): as asked, else that size brought to `trainable_size`,
    and 1 channel if all of them are gray."""
    if image_size and channels:
        return (*image_size, channels), None
    sizes, modes = Counter(), set()
    for relative, _ in listing["labeled"]:
        try:
            with _open(folder / relative) as image:
                sizes[images.upright_size(image)] += 1
                modes.add(image.mode)
        except Exception:  # noqa: BLE001 - the decoding pass names it, with every other bad file
            continue
    if not sizes:
        raise UserError(f"{folder / 'labeled'}: none of its files is a readable {images.NAMES} image")
    width, height = sizes.most_common(1)[0][0]
    size = image_size or trainable_size(height, width)
    return (*size, channels or (1 if modes <= GRAY_MODES else 3)), (height, width)


def trainable_size(height: int, width: int, longer: int = DEFAULT_LONGER_SIDE) -> tuple:
    """(H, W) with the longer side at most `longer`, the aspect kept, both sides multiples of 4 (the generator
    upsamples twice) and at least 8: 480x640 -> 24x32; 28x28 stays 28x28."""
    factor = min(1.0, longer / max(height, width))
    return tuple(max(images.MIN_SIDE, 4 * round(side * factor / 4)) for side in (height, width))


def _open(path):
    """The image at `path`, header read."""
    return images.open_image(path, images.FILE_MAX_PIXELS)


def _listing_digest(folder: Path, listing: dict) -> str:
    """SHA-256 over every file's part, relative path and content SHA-256: the dataset's identity."""
    files = [relative for part in ("labeled", "unlabeled", "test") for relative, _ in listing[part]]
    with _pool() as pool:
        sums = list(tqdm(pool.map(_sha256, [folder / f for f in files], chunksize=CHUNK), total=len(files),
                         desc="sgan prepare: hashing", unit="file", mininterval=1))
    listing["sha256"] = dict(zip(files, sums))
    digest = hashlib.sha256()
    for relative, checksum in zip(files, sums):
        digest.update(os.fsencode(f"{relative}\0{checksum}\n"))
    return digest.hexdigest()


def _pool() -> ProcessPoolExecutor:
    """Decoding on every core; spawned, not forked, since the caller may hold TensorFlow's threads; each worker
    dies with the process that started it, even by SIGKILL."""
    return ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int):
    """In a decoding process: leave as soon as `parent`, the process that started it, is gone (a `kill -9` of
    `sgan prepare` would otherwise leave it waiting for work forever), even if that was before it got here."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(cache_dir: Path, digest: str, shape: tuple) -> Path:
    return cache_dir / hashlib.sha256(f"{CACHE_FORMAT}:{digest}:{shape}".encode()).hexdigest()[:32]


def _decode_into(entry: Path, folder: Path, listing: dict, shape: tuple, digest: str, class_names: list,
                 skip_bad: bool):
    """Decodes every image into a staging folder renamed into place whole. A bad file or a full disk leaves
    nothing behind; a run killed while decoding leaves its staging folder, and the next run on the same files goes
    on from the images it had decoded. One process decodes an entry; another that wants it waits, then reads it."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _claimed(entry) as staging:
        if staging is None:  # made while this process waited
            return
        pool = _pool()
        try:
            _decode_staged(staging, folder, listing, shape, digest, class_names, skip_bad, pool)
            os.rename(staging, entry)
        except Exception as e:  # bad files and a full disk leave nothing; a crash or a kill leaves what resumes
            if isinstance(e, UserError) or no_space(e):
                shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            pool.shutdown(cancel_futures=True)


@contextmanager
def _claimed(entry: Path):
    """`entry`'s staging folder, held by this process alone (a lock on the folder itself, so that nothing else is
    left in the cache); None once another process has made the entry."""
    staging = entry.parent / f".{entry.name}.partial"
    while not (entry / "meta.json").is_file():
        staging.mkdir(exist_ok=True)
        handle = os.open(staging, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if staging.is_dir() and os.stat(staging).st_ino == os.fstat(handle).st_ino:  # not renamed or removed
                yield staging
                return
        finally:
            os.close(handle)
    yield None


def _decode_staged(staging: Path, folder: Path, listing: dict, shape: tuple, digest: str, class_names: list,
                   skip_bad: bool, pool: ProcessPoolExecutor):
    arrays = {}
    skipped = [{"file": file, "reason": reason, "part": part} for part, file, reason in listing["unusable"]]
    for part in ("labeled", "test", "unlabeled"):  # the labeled and test files first: all of them judged
        files = listing[part]
        x, failed = _decode_part(staging, folder, part, files, shape, pool)
        skipped += [{"file": files[i][0], "reason": reason, "part": part} for i, reason in sorted(failed.items())]
        usable = np.ones(len(files), bool)
        usable[list(failed)] = False
        arrays[part] = (x, np.array([k for _, k in files], np.int64), usable)
        bad = [s for s in skipped if s["part"] != "unlabeled"]
        if part == "test" and bad and not skip_bad:
            raise _unusable(folder, bad)
    _, y_labeled, usable = arrays["labeled"]
    if empty := [name for k, name in enumerate(class_names) if not np.any(y_labeled[usable] == k)]:
        raise UserError(f"{folder / 'labeled' / empty[0]}: no usable image is left in this class")
    readable = arrays["unlabeled"][2]
    if not readable.any():
        raise UserError(f"{folder / 'unlabeled'}: none of its {len(readable)} files is a readable "
                        f"{images.NAMES} image")
    _write_training_set(staging, arrays)
    rows, y_test, usable = arrays["test"]
    _gather(staging / "x_test.npy", [(rows, np.flatnonzero(usable))])
    np.save(staging / "y_test.npy", y_test[usable])
    for part in ("labeled", "unlabeled", "test"):
        (staging / f"{part}.npy").unlink()
        (staging / f"{part}.progress.json").unlink(missing_ok=True)
    files = [{"file": f, "sha256": listing["sha256"][f]} for part in ("labeled", "unlabeled", "test")
             for f, _ in listing[part]]
    meta = {"format": CACHE_FORMAT, "source": str(folder), "listing_sha256": digest, "image_shape": list(shape),
            "class_names": class_names, "skipped": skipped, "files": len(files)}
    (staging / "files.json").write_text(json.dumps(files))  # every source file's SHA-256
    kept = np.flatnonzero(readable)
    (staging / "unlabeled.json").write_text(json.dumps([listing["unlabeled"][i][0] for i in kept]))
    (staging / "meta.json").write_text(json.dumps(meta, indent=2))


def _decode_part(staging: Path, folder: Path, part: str, files: list, shape: tuple,
                 pool: ProcessPoolExecutor) -> tuple["Rows", dict]:
    """(the part's images, {index: why it could not be decoded}). The chunks decoded are recorded (their images on
    disk first) after the first and then every RECORD_EVERY_S, so a killed run's successor decodes only the rest."""
    path, record = staging / f"{part}.npy", staging / f"{part}.progress.json"
    state = json.loads(record.read_text()) if record.is_file() else {"done": [], "errors": {}}
    x = Rows.opened(path) if path.is_file() and state["done"] else None
    if x is None or x.shape != (len(files), *shape):
        x, state = Rows.created(path, (len(files), *shape)), {"done": [], "errors": {}}
    done = set(state["done"])
    todo = [i for i in range(0, len(files), CHUNK) if i not in done]
    chunks = [[str(folder / f) for f, _ in files[i:i + CHUNK]] for i in todo]
    resumed, saved = sum(min(CHUNK, len(files) - i) for i in done), time.monotonic()
    with tqdm(total=len(files), initial=resumed, desc=f"sgan prepare: decoding {part}"
              + (f" (resumed at {resumed})" if resumed else ""), unit="image", mininterval=1,
              disable=not files) as progress:
        for start, (batch, errors) in zip(todo, pool.map(_decode_chunk, chunks, [shape] * len(chunks))):
            x.write(start, batch)
            state["errors"].update({str(start + offset): reason for offset, reason in errors})
            state["done"].append(start)
            progress.update(len(batch))
            if len(state["done"]) == 1 or time.monotonic() - saved > RECORD_EVERY_S or start == todo[-1]:
                x.sync()
                atomic.write_bytes(record, json.dumps(state).encode())
                saved = time.monotonic()
    return x, {int(i): reason for i, reason in state["errors"].items()}


def _write_training_set(staging: Path, arrays: dict):
    """x_train.npy: the usable labeled images, then the readable unlabeled ones; y_train.npy: their labels or
    UNLABELED."""
    parts = [arrays["labeled"], arrays["unlabeled"]]
    keeps = [np.flatnonzero(ok) for _, _, ok in parts]
    _gather(staging / "x_train.npy", [(rows, keep) for (rows, _, _), keep in zip(parts, keeps)])
    np.save(staging / "y_train.npy", np.concatenate([labels[keep] for (_, labels, _), keep in zip(parts, keeps)]))


def _gather(path: Path, sources: list):
    """A new .npy of the rows `keep` (sorted indices) of each `Rows`, in order, copied a block at a time."""
    out = Rows.created(path, (sum(len(keep) for _, keep in sources), *sources[0][0].shape[1:]))
    at = 0
    for rows, keep in sources:
        step = rows.block
        for start in range(0, len(keep), step):
            chunk = keep[start:start + step]
            out.write(at, rows.read(chunk[0], chunk[-1] + 1)[chunk - chunk[0]])
            at += len(chunk)
    out.sync()


def _decode_chunk(paths: list, shape: tuple) -> tuple[np.ndarray, list]:
    """(images [n, H, W, C], [(offset, reason)] for the files that could not be decoded)."""
    batch, errors = np.zeros((len(paths), *shape), np.uint8), []
    for i, path in enumerate(paths):
        try:
            with _open(path) as image:
                batch[i] = images.to_shape(image, shape)
        except Exception as e:  # noqa: BLE001 - a bad file is reported, whatever the decoder raised
            errors.append((i, _why(path, e)))
    return batch, errors


def _why(path: str, error: Exception) -> str:
    """Why a file cannot be used, in the words a user acts on."""
    if os.path.getsize(path) == 0:
        return "an empty file (0 bytes)"
    if isinstance(error, UnidentifiedImageError):
        return f"not a {images.NAMES} image, or damaged in its header"
    if isinstance(error, images.TooLarge):
        return str(error)
    return f"damaged ({type(error).__name__}: {str(error).replace(repr(path), 'the file')})"
