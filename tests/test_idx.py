import gzip

import numpy as np
import pytest

from sgan.data import idx
from sgan.errors import UserError


@pytest.mark.parametrize("shape", [(7,), (5, 28, 28), (3, 4, 4, 3)])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, shape, compress):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    payload = idx.encode(array)
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    decoded = idx.parse(idx.read_bytes(path), path)
    assert decoded.shape == shape
    np.testing.assert_array_equal(decoded, array)


def test_bad_magic():
    with pytest.raises(UserError, match=r"f\.idx: bad IDX magic number 0x01000803"):
        idx.parse(b"\x01\x00\x08\x03" + bytes(12), "f.idx")


def test_unsupported_dtype():
    with pytest.raises(UserError, match="data type 0x0d is not supported"):
        idx.parse(b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + bytes(4), "f")


def test_truncated_data():
    payload = idx.encode(np.zeros((10, 4, 4), np.uint8))
    with pytest.raises(UserError, match=r"f: IDX header declares shape \(10, 4, 4\) \(176 bytes\) .*holds 100 bytes \(truncated\)"):
        idx.parse(payload[:100], "f")


def test_trailing_bytes():
    with pytest.raises(UserError, match="holds 21 bytes"):
        idx.parse(idx.encode(np.zeros(12, np.uint8)) + b"x", "f")


def test_truncated_header():
    with pytest.raises(UserError, match="truncated IDX header"):
        idx.parse(b"\x00\x00\x08\x03" + bytes(5), "f")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx.encode(np.zeros(1000, np.uint8)))[:-20])
    with pytest.raises(UserError, match=r"labels\.gz: corrupt or truncated gzip data"):
        idx.read_bytes(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(UserError, match="missing: cannot read"):
        idx.read_bytes(tmp_path / "missing")
