import atexit
import functools
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from sgan.data import idx

# The console script a user types (not `python -m cli`): what a user runs is what the tests run.
SGAN = str(Path(sys.executable).with_name("sgan"))
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _without_prefect(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.startswith("PREFECT_")}


@functools.cache
def _migrated_prefect_db() -> Path:
    """A Prefect database migrated once per test session (`prefect server database upgrade`): a new Prefect home
    that starts from a copy of it skips the 15 s of migrations, as a user's own home does after its first run."""
    home = Path(tempfile.mkdtemp(prefix="sgan-tests-prefect-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    subprocess.run([str(Path(sys.executable).with_name("prefect")), "server", "database", "upgrade", "-y"],
                   env={**_without_prefect(os.environ), "PREFECT_HOME": str(home),
                        "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                   check=True, capture_output=True, timeout=300)
    return home / "prefect.db"


def flow_env(prefect_home: Path, base: dict | None = None, **extra) -> dict:
    """`base` (this process's environment) for flow runs of their own: Prefect settings dropped, `prefect_home` as
    the Prefect home, its database already migrated."""
    if not (prefect_home / "prefect.db").exists():
        prefect_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(_migrated_prefect_db(), prefect_home / "prefect.db")
    return {**_without_prefect(base or os.environ), "PREFECT_HOME": str(prefect_home), "TF_CPP_MIN_LOG_LEVEL": "3",
            **extra}


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
    """A small SGAN trained on synthetic digits-like data, exported to ONNX (float and INT8)."""
    from deploy.export import export_run
    from sgan import atomic, data
    from sgan.config import TrainConfig
    from sgan.training.train import train

    root = tmp_path_factory.mktemp("exported")
    dataset = data.load(write_idx_dataset(root / "data", n_train=400, n_test=200))
    labeled = data.choose_labeled(dataset.y_train, 50, 10, seed=0)
    atomic.write_json(root / "run" / "manifest.json", data.manifest(dataset, labeled, seed=0))
    train(TrainConfig(iterations=60, batch_size=16, z_dim=16, eval_every=60, checkpoint_every=60), dataset, labeled,
          root / "run")
    return root / "run", export_run(root / "run", calibration_size=200), dataset


def write_image_folder(root: Path, classes=("cat", "dog", "frog"), labeled_per_class=4, unlabeled=60,
                       test_per_class=3, size=(16, 16), mode="L", seed=0) -> Path:
    """A folder as users keep one: labeled/<class>/ (PNG and JPEG), unlabeled/ nested two deep, test/<class>/
    (test_per_class=0: no test folder). Class k's images light up their own band of rows."""
    from PIL import Image

    channels = 1 if mode == "L" else 3

    def save(path: Path, k: int, i: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = synthetic_images(np.array([k]), (*size, channels), seed=[seed, zlib.crc32(str(path).encode())])[0]
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
        image.save(path, quality=95) if path.suffix == ".jpg" else image.save(path)

    for k, name in enumerate(classes):
        for i in range(labeled_per_class):
            save(root / "labeled" / name / f"{name}{i}.{'jpg' if i % 2 else 'png'}", k, i)
        for i in range(test_per_class):
            save(root / "test" / name / f"t{i}.png", k, i)
    for i in range(unlabeled):
        save(root / "unlabeled" / f"batch{i % 3}" / f"part{i % 2}" / f"u{i}.{'jpg' if i % 5 == 0 else 'png'}",
             i % len(classes), i)
    return root
