"""Fetches MNIST from its public mirrors, keeping a file only if its decompressed SHA-256 matches."""

import gzip
import hashlib
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from sgan import atomic
from sgan.errors import UserError

MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
# SHA-256 of the decompressed files: mirrors re-compress, so the .gz bytes may differ while the content must not.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
DEFAULT_CACHE = Path.home() / ".cache" / "sgan" / "mnist"


def _decompressed_sha256(gz_bytes: bytes) -> str | None:
    try:
        return hashlib.sha256(gzip.decompress(gz_bytes)).hexdigest()
    except (EOFError, OSError, zlib.error):
        return None


def download_mnist(dest=DEFAULT_CACHE, mirrors=MNIST_MIRRORS, timeout=60) -> Path:
    """Makes `dest` hold the four verified MNIST files; files already there and valid are kept."""
    dest = Path(dest)
    for name, sha256 in MNIST_SHA256.items():
        target = dest / f"{name}.gz"
        if target.exists() and _decompressed_sha256(target.read_bytes()) == sha256:
            continue
        failures = []
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    payload = response.read()
            except (urllib.error.URLError, OSError) as e:
                failures.append(f"{url}: {getattr(e, 'reason', e)}")
                continue
            got = _decompressed_sha256(payload)
            if got == sha256:
                atomic.write_bytes(target, payload)
                break
            failures.append(f"{url}: checksum mismatch (got {got or 'undecodable gzip'}, expected {sha256})")
        else:
            raise UserError(f"could not download {name}.gz: " + "; ".join(failures))
    return dest
