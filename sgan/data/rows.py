"""A uint8 .npy file of images, written and read through the file a few rows at a time, never memory-mapped.

The pages of a memory map count in a process's resident memory, and random reads of a map fault in the kernel's
read-ahead around every row: training that drew batches from a mapped million images held gigabytes after a few
iterations. Read through the file, a process holds the rows it asked for and nothing else. A slice is a view
(no read), rows chosen by index are read (as numpy does for a memory map), `np.asarray` reads them all.
"""

import os
from pathlib import Path

import numpy as np

from sgan.errors import UserError


class Rows:
    BLOCK_BYTES = 64 * 2**20  # the most one read or write moves

    def __init__(self, path: Path, shape: tuple, offset: int):
        self.path, self.shape, self.offset = Path(path), tuple(int(n) for n in shape), offset
        self.row = int(np.prod(self.shape[1:]))
        self.block = max(1, self.BLOCK_BYTES // self.row)

    dtype = np.dtype(np.uint8)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @classmethod
    def created(cls, path: Path, shape: tuple) -> "Rows":
        """Its blocks are reserved now: a full disk is an error here, not a short write later."""
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
            offset = f.tell()
            os.posix_fallocate(f.fileno(), 0, offset + int(np.prod(shape)))
        return cls(path, shape, offset)

    @classmethod
    def opened(cls, path: Path) -> "Rows":
        x = np.load(path, mmap_mode="r")  # the header only: no page of it is read
        if x.dtype != np.uint8:
            raise UserError(f"{path}: uint8 images expected, found {x.dtype}")
        return cls(path, x.shape, x.offset)

    def write(self, start: int, rows: np.ndarray):
        with open(self.path, "r+b") as f:
            os.pwrite(f.fileno(), np.ascontiguousarray(rows, np.uint8).data, self.offset + start * self.row)

    def sync(self):
        """On disk before a progress record says so."""
        with open(self.path, "rb") as f:
            os.fdatasync(f.fileno())

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1."""
        return self._runs(np.arange(start, stop), [(0, stop - start)])

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return Rows(self.path, (max(0, stop - start), *self.shape[1:]), self.offset + start * self.row)
            key = np.arange(start, stop, step)
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        indices = np.asarray(key)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise IndexError(f"rows are chosen by integers or booleans, not {indices.dtype}")
        shape = indices.shape
        indices = np.where(indices < 0, indices + len(self), indices).astype(np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        wanted, order = np.unique(indices, return_inverse=True)
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1  # consecutive rows are read together
        bounds = list(zip(np.r_[0, breaks], np.r_[breaks, len(wanted)]))
        return self._runs(wanted, bounds)[order.ravel()].reshape(*shape, *self.shape[1:])

    def __array__(self, dtype=None, copy=None):
        x = self.read(0, len(self))
        return x if dtype is None else x.astype(dtype)

    def _runs(self, wanted: np.ndarray, bounds: list) -> np.ndarray:
        """The rows `wanted` (sorted, unique), whose consecutive runs are wanted[a:b] for (a, b) in `bounds`."""
        out = np.empty((len(wanted), *self.shape[1:]), np.uint8)
        flat = out.reshape(len(wanted), self.row)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for a, b in bounds:
                for s in range(a, b, self.block):
                    e = min(b, s + self.block)
                    got = os.preadv(fd, [flat[s:e]], self.offset + int(wanted[s]) * self.row)
                    if got != (e - s) * self.row:
                        raise UserError(f"{self.path}: shorter than its header says; delete it to decode again")
        finally:
            os.close(fd)
        return out
