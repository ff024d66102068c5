"""Where datasets come from: one small module per kind of source, behind `load`.

- an image folder (`labeled/<class>/...`, `unlabeled/...`, optional `test/<class>/...`): sources/image_folder.py;
- an .npz file, fully labeled (x_train, y_train, ...) or partially (x_labeled, y_labeled, x_unlabeled, ...):
  sources/npz.py;
- a folder of the four MNIST-format IDX files: sources/idx_folder.py.
"""

from pathlib import Path

from sgan.errors import UserError


def load(source, image_size: tuple | None = None, channels: int | None = None, cache_dir=None, listing_sha256=None,
         skip_bad: bool = False):
    """The validated `dataset.Dataset` at `source`. `image_size` (H, W), `channels` and `skip_bad` (leave out the
    labeled and test files that cannot be used) apply to image folders, whose decoded images are cached
    (content-addressed, memory-mapped) under `cache_dir`; `listing_sha256`, recorded in a manifest, lets a cached
    folder load without re-reading its files."""
    from sgan.data.sources import idx_folder, image_folder, npz

    kind = check(source, image_size, channels, list_images=False)  # load lists them once, itself
    path = Path(source)
    if kind == "image folder":
        return image_folder.load(path, image_size, channels, cache_dir, listing_sha256, skip_bad)
    return idx_folder.load(path) if kind == "IDX folder" else npz.load(path)


def check(source, image_size: tuple | None = None, channels: int | None = None, list_images: bool = True) -> str:
    """Which kind of source `source` is, after the checks that need no decoding (an image folder's layout is
    listed): a wrong path or layout is one line in a second, before anything starts."""
    from sgan.data.sources import idx_folder, image_folder

    path = Path(source)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir() and (path / "labeled").is_dir():
        if list_images:
            image_folder.scan(path.resolve())
        return "image folder"
    if image_size or channels:
        raise UserError(f"{path}: --image-size and --channels apply to image folders only")
    if path.is_dir():
        idx_folder.files(path)
        return "IDX folder"
    if path.suffix == ".npz" and path.is_file():
        return "npz"
    raise UserError(f"{path}: not an image folder (with labeled/), a folder of IDX files, or an .npz file")
