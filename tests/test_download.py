"""The real download code against a real HTTP server on loopback, serving the real MNIST bytes."""

import functools
import http.server
import shutil
import threading

import pytest
from conftest import SHARED_MNIST

from sgan import data
from sgan.data.download import MNIST_SHA256, download_mnist
from sgan.errors import UserError

pytestmark = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist")


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()


def test_download_verifies_and_loads(tmp_path, serve):
    mirror = serve(SHARED_MNIST)
    dest = download_mnist(tmp_path / "cache", mirrors=[mirror])
    dataset = data.load(dest)
    assert dataset.checksums == MNIST_SHA256
    assert len(dataset.x_train) == 60000 and len(dataset.x_test) == 10000


def test_corrupt_mirror_falls_back_to_the_next(tmp_path, serve):
    bad = tmp_path / "bad"
    shutil.copytree(SHARED_MNIST, bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    dest = download_mnist(tmp_path / "cache", mirrors=[serve(bad), serve(SHARED_MNIST)])
    assert data.load(dest).checksums == MNIST_SHA256


def test_every_mirror_bad_is_a_clear_error_and_writes_nothing(tmp_path, serve):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in MNIST_SHA256:
        shutil.copy(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", bad / f"{name}.gz")
    dest = tmp_path / "cache"
    with pytest.raises(UserError, match=r"could not download train-images-idx3-ubyte\.gz: .*checksum mismatch"):
        download_mnist(dest, mirrors=[serve(bad), "http://127.0.0.1:9/"])
    assert not dest.exists() or not any(dest.iterdir())
