"""A run directory: what `prepare`, `train`, `evaluate` and `export` read and write, by name."""

import json
from pathlib import Path

import numpy as np

from sgan import data
from sgan.data.dataset import Dataset
from sgan.errors import UserError, first_line


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    def __truediv__(self, name) -> Path:
        return self.path / name

    def read_json(self, name: str, hint: str) -> dict:
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: not found ({hint})") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None

    def manifest(self) -> dict:
        return self.read_json("manifest.json", "run `sgan prepare` first")

    def write_manifest(self, manifest: dict):
        """manifest.json, and beside it skipped.json: the unreadable unlabeled files that were left out."""
        from sgan import atomic

        atomic.write_json(self.path / "manifest.json", manifest)
        atomic.write_json(self.path / "skipped.json", manifest["dataset"].get("skipped", []))

    def labeled(self) -> np.ndarray:
        return np.asarray(self.manifest()["indices"])

    def dataset(self) -> Dataset:
        return data.load_for_manifest(self.manifest())

    def config(self):
        from sgan.config import TrainConfig

        return TrainConfig(**self.read_json("config.json", "run `sgan train` first"))

    def model(self, name: str):
        """`generator` or `discriminator`, as saved at the end of training."""
        import zipfile

        import keras

        import sgan.models.networks  # noqa: F401 - registers the custom layers a saved model may hold

        path = self.path / f"{name}.keras"
        if not path.exists():
            raise UserError(f"{path}: not found; run `sgan train` first")
        try:
            return keras.models.load_model(path)
        except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise UserError(f"{path}: cannot load the trained model ({first_line(e)}); run the same `sgan train` "
                            "command again to save it anew from the last checkpoint") from None
