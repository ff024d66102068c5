"""The IDX file format of MNIST (http://yann.lecun.com/exdb/mnist/), gzip-compressed or raw.

Only unsigned-byte data (type code 0x08) is supported: that is what image and label files hold.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from sgan.errors import UserError

UBYTE = 0x08


def read_bytes(path) -> bytes:
    """The decompressed content of an IDX file (gzip is detected from its magic bytes, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path}: corrupt or truncated gzip data ({e})") from None


def parse(data: bytes, name) -> np.ndarray:
    """Decodes IDX bytes into an array, checking the magic number and that the size matches."""
    if len(data) < 4:
        raise UserError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0:
        raise UserError(f"{name}: bad IDX magic number 0x{data[:4].hex()} (must start with 0x0000)")
    if dtype != UBYTE:
        raise UserError(f"{name}: IDX data type 0x{dtype:02x} is not supported (only unsigned bytes, 0x08)")
    if not 1 <= ndim <= 4:
        raise UserError(f"{name}: IDX file has {ndim} dimensions (1 to 4 supported)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise UserError(
            f"{name}: IDX header declares shape {shape} ({expected} bytes) but the file holds {len(data)} bytes"
            + (" (truncated)" if len(data) < expected else "")
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def encode(array: np.ndarray) -> bytes:
    """IDX bytes for a uint8 array (used to write datasets and test fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()
