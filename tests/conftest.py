import contextlib
import fcntl
import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from sgan.data import idx

# The console script a user types (not `python -m cli`): what a user runs is what the tests run.
SGAN = str(Path(sys.executable).with_name("sgan"))
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _without_prefect(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.startswith("PREFECT_")}


PREFECT = Path(sys.executable).with_name("prefect")
_PREFECT_DB: list[Path] = []  # the migrated database (the session fixture below fills it)


def shared_root(tmp_path_factory) -> Path:
    """The folder every test process of this run shares: pytest-xdist gives each worker a basetemp below it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def once(folder: Path):
    """Yields True to the one test process that must make `folder` (the others wait, then get False): for what the
    test processes of a run share."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".done"
        yield not done.exists()
        done.touch()


@pytest.fixture(scope="session", autouse=True)
def _shared_prefect_db(tmp_path_factory):
    _PREFECT_DB[:] = [shared_root(tmp_path_factory) / "prefect-migrated" / "prefect.db"]


def _prefect_db() -> Path:
    """A Prefect database migrated once per test run (`prefect server database upgrade`): a new Prefect home that
    starts from a copy of it skips the 15 s of migrations, as a user's own home does after its first run."""
    home = _PREFECT_DB[0].parent
    with once(home) as first:
        if first:
            subprocess.run([str(PREFECT), "server", "database", "upgrade", "-y"],
                           env={**_without_prefect(os.environ), "PREFECT_HOME": str(home),
                                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                           check=True, capture_output=True, timeout=300)
    return _PREFECT_DB[0]


def flow_env(prefect_home: Path, base: dict | None = None, **extra) -> dict:
    """`base` (this process's environment) for flow runs of their own: Prefect settings dropped, `prefect_home` as
    the Prefect home, its database already migrated."""
    if not (prefect_home / "prefect.db").exists():
        prefect_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(_prefect_db(), prefect_home / "prefect.db")
    environment = {k: v for k, v in _without_prefect(base or os.environ).items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**environment, "PREFECT_HOME": str(prefect_home), **extra}  # logs as a user sees them (NOISE)


# What a good run must not print: TensorFlow's C++ start-up chatter, absl's preamble, onnxruntime's advice.
NOISE = re.compile(r"cpu_feature_guard|^I\d{4} |absl::InitializeLog|pre-processing before quantization|"
                   r"oneDNN custom operations|computation placer already registered", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def prefect_server(home: Path, **settings):
    """A real `prefect server start` on a free loopback port: yields (API URL, the environment that uses it)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = flow_env(home, PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
                   **settings)
    server = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield api, env
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory) -> str:
    """One real Prefect server for this test process's flow runs, as operators run one: a flow run with
    PREFECT_API_URL set starts no temporary server of its own."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as (api, _):
        yield api


def synthetic_images(labels: np.ndarray, shape=(28, 28, 1), seed=0) -> np.ndarray:
    """Learnable images: class k lights up a band of rows at a class-specific position, plus noise."""
    rng = np.random.default_rng(seed)
    height = shape[0]
    images = rng.integers(0, 60, size=(len(labels), *shape), dtype=np.int64)
    band = height // 10
    for i, k in enumerate(labels):
        images[i, k * band : (k + 1) * band] += 180
    return np.clip(images, 0, 255).astype(np.uint8)


def write_idx_dataset(folder: Path, n_train=200, n_test=100, num_classes=10, compress=True, seed=0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    y_train = np.arange(n_train) % num_classes
    y_test = np.arange(n_test) % num_classes
    arrays = {
        "train-images-idx3-ubyte": synthetic_images(y_train, seed=seed)[..., 0],
        "train-labels-idx1-ubyte": y_train,
        "t10k-images-idx3-ubyte": synthetic_images(y_test, seed=seed + 1)[..., 0],
        "t10k-labels-idx1-ubyte": y_test,
    }
    for name, array in arrays.items():
        payload = idx.encode(array)
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return folder


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    return write_idx_dataset(tmp_path / "data")


@pytest.fixture
def rgb_npz(tmp_path) -> Path:
    y_train, y_test = np.arange(120) % 10, np.arange(50) % 10
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=synthetic_images(y_train, (32, 32, 3)), y_train=y_train,
             x_test=synthetic_images(y_test, (32, 32, 3), seed=1), y_test=y_test)
    return path


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory):
    """A small SGAN trained on synthetic digits-like data, exported to ONNX (float and INT8): made once per test
    run, read by every test process."""
    import json

    from sgan import data

    root = shared_root(tmp_path_factory) / "exported"
    with once(root) as first:
        if first:
            _train_and_export(root)
    return root / "run", json.loads((root / "run" / "onnx_report.json").read_text()), data.load(root / "data")


def _train_and_export(root: Path):
    from deploy.export import export_run
    from sgan import atomic, data
    from sgan.config import TrainConfig
    from sgan.training.train import train

    dataset = data.load(write_idx_dataset(root / "data", n_train=400, n_test=200))
    labeled = data.choose_labeled(dataset.y_train, 50, 10, seed=0)
    atomic.write_json(root / "run" / "manifest.json", data.manifest(dataset, labeled, seed=0))
    train(TrainConfig(iterations=60, batch_size=16, z_dim=16, eval_every=60, checkpoint_every=60), dataset, labeled,
          root / "run")
    export_run(root / "run", calibration_size=200)


def write_image_folder(root: Path, classes=("cat", "dog", "frog"), labeled_per_class=4, unlabeled=60,
                       test_per_class=3, size=(16, 16), mode="L", seed=0, formats=("png", "jpg")) -> Path:
    """A folder as users keep one: labeled/<class>/ (PNG and JPEG, or the `formats` in turn), unlabeled/ nested two
    deep, test/<class>/ (test_per_class=0: no test folder). Class k's images light up their own band of rows."""
    from PIL import Image

    from sgan import images  # noqa: F401 - registers HEIC with Pillow, for writing too

    channels = 1 if mode == "L" else 3
    options = {".jpg": {"quality": 95}, ".webp": {"lossless": True}, ".heic": {"quality": 95},
               ".avif": {"quality": 95}}

    def save(path: Path, k: int, i: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = synthetic_images(np.array([k]), (*size, channels), seed=[seed, zlib.crc32(str(path).encode())])[0]
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path, **options.get(path.suffix, {}))

    def unlabeled_format(i: int) -> str:
        return ("jpg" if i % 5 == 0 else "png") if formats == ("png", "jpg") else formats[i % len(formats)]

    for k, name in enumerate(classes):
        for i in range(labeled_per_class):
            save(root / "labeled" / name / f"{name}{i}.{formats[i % len(formats)]}", k, i)
        for i in range(test_per_class):
            save(root / "test" / name / f"t{i}.png", k, i)
    for i in range(unlabeled):
        save(root / "unlabeled" / f"batch{i % 3}" / f"part{i % 2}" / f"u{i}.{unlabeled_format(i)}", i % len(classes), i)
    return root


# The files whose tests take minutes: started first (`make test` keeps this order), so that the test processes,
# given a file at a time, end together.
SLOW_FILES = ("test_pipeline.py", "test_multinode.py", "test_k8s.py", "test_gpus.py", "test_cli.py",
              "test_user_data.py", "test_train.py", "test_label.py", "test_horovod.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: SLOW_FILES.index(item.path.name) if item.path.name in SLOW_FILES else len(SLOW_FILES))
