"""Image files to arrays of one shape: what `prepare`, `predict` and the HTTP service share (Pillow and numpy only).

Decoders read the header first, so a file's declared size is checked before a pixel is decoded.
"""

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF, iPhones' default, through libheif; Pillow itself reads WebP and AVIF
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF = ("HEIF",)
except ImportError:
    HEIF = ()

MAX_PIXELS = 2048 * 2048  # what the HTTP service decodes: a larger declared size is refused from the header alone
FILE_MAX_PIXELS = 120_000_000  # a user's own files: any phone or camera photo (108 megapixels at most today)
FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", *HEIF)
EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".avif", ".heic", ".heif"}
NAMES = "PNG, JPEG, WebP, AVIF" + (" or HEIC" if HEIF else "")  # what a message says is read
ORIENTATION = 0x0112  # the EXIF tag
MIN_SIDE = 8  # pixels: smaller images leave the discriminator's last convolution nothing to see


class TooLarge(ValueError):
    """An image whose header declares more pixels than allowed."""


@contextlib.contextmanager
def _size_checked_here():
    """Silences Pillow's own decompression-bomb warning: `open_image` applies the limit that fits the source."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def open_image(source, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A PNG, JPEG, WebP, AVIF or HEIC image opened lazily (its header read, no pixel decoded); TooLarge above `max_pixels` (decompression
    bombs: MAX_PIXELS for what arrives over the network, FILE_MAX_PIXELS for the user's own files)."""
    with _size_checked_here():
        image = Image.open(source, formats=FORMATS)
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise TooLarge(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    return image


def image_files(root) -> list[Path]:
    """The image files below `root`, at any depth, in a stable order (what cannot be listed: `listed`)."""
    return listed(root)[0]


def listed(root) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(the image files below `root`, in a stable order; [(path, why it cannot be used)] for what is in the way: a
    folder that cannot be read, a link that leads nowhere or in a loop, a name that is not UTF-8). Files that are
    not images by their extension (.DS_Store, .xmp sidecars, Thumbs.db) are left out without a word."""
    files, problems, seen = [], [], {_identity(root)}

    def unreadable(error: OSError):
        problems.append((Path(error.filename), f"cannot read this folder ({error.strerror})"))

    for folder, folders, names in os.walk(root, onerror=unreadable, followlinks=True):
        kept = []
        for name in folders:  # linked folders are followed, each folder once: a link in a loop ends there
            path = Path(folder) / name
            try:
                identity = _identity(path)
            except OSError as e:
                problems.append((path, f"a link to nothing, or a link in a loop ({e.strerror})"))
                continue
            if identity in seen:
                problems.append((path, "a link to a folder already listed (a loop, or the same images twice)"))
            else:
                seen.add(identity)
                kept.append(name)
        folders[:] = kept
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() not in EXTENSIONS:
                continue
            if not _utf8(str(path)):
                problems.append((path, "its name is not valid UTF-8: rename it"))
            elif not path.is_file():
                problems.append((path, "a link to nothing, or a link in a loop"))
            else:
                files.append(path)
    return sorted(files), sorted(problems)


def _identity(path) -> tuple:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _utf8(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates
        return False


def shown(path) -> str:
    """A path as a message can print it, whatever bytes its name holds."""
    return os.fsencode(path).decode(errors="replace")


def parse_size(text: str) -> tuple:
    """"32x32" -> (32, 32), both sides divisible by 4 (the generator upsamples twice); ValueError otherwise."""
    height, _, width = text.lower().partition("x")
    if not (height.isdigit() and width.isdigit() and int(height) > 0 and int(width) > 0):
        raise ValueError(f"{text!r} is not HxW (e.g. 32x32)")
    if int(height) % 4 or int(width) % 4 or min(int(height), int(width)) < MIN_SIDE:
        raise ValueError(f"{text}: both sides must be divisible by 4 (the generator upsamples twice) and at least "
                         f"{MIN_SIDE} (the discriminator halves them three times)")
    return int(height), int(width)


def on_its_side(image: Image.Image) -> bool:
    """Stored rotated by a quarter turn (its EXIF orientation 5 to 8): upright, its width and height swap."""
    return image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)


def upright_size(image: Image.Image) -> tuple:
    """(width, height) as the photo is seen."""
    width, height = image.size
    return (height, width) if on_its_side(image) else (width, height)


def to_shape(image: Image.Image, shape: tuple) -> np.ndarray:
    """[H, W, C] uint8: turned upright as its EXIF orientation says (phone photos), converted to grayscale (C=1) or
    RGB (C=3), resized to H x W if it differs. JPEGs are decoded at a reduced scale (1/2 to 1/8) when that still
    covers H x W (Pillow's draft mode), so a 48-megapixel photo decodes into a few megabytes."""
    height, width, channels = shape
    mode = "L" if channels == 1 else "RGB"
    if image.format == "JPEG":
        image.draft(mode, (height, width) if on_its_side(image) else (width, height))
    with _size_checked_here():
        image = ImageOps.exif_transpose(image).convert(mode)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(image).reshape(height, width, channels)


def upsamplings(height: int, width: int) -> int:
    """How many times a generator doubles its start grid to reach the image: while both sides halve evenly and
    the smaller stays at least 3 (24x32 starts from 3x4, 32x32 and 64x64 from 4x4)."""
    count = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= 3:
        height, width, count = height // 2, width // 2, count + 1
    return count
