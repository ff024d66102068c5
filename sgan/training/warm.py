"""Warm start: when new labels arrive for the same classes, a run can begin from a trained model's weights (its
generator and its averaged discriminator) instead of random ones. The optimizer and the learning-rate schedule
start afresh; only the weights carry over.
"""

import json
from pathlib import Path

from sgan.config import TrainConfig
from sgan.errors import UserError

WEIGHTS = ("generator.keras", "discriminator.keras")


def find(path: Path) -> Path:
    """A published version (`models/vNNNN`), a models root (its `latest`) or a trained run folder, with weights."""
    path = Path(path).resolve()
    if (path / "latest").is_dir():
        path = (path / "latest").resolve()
    missing = [name for name in (*WEIGHTS, "manifest.json", "config.json") if not (path / name).is_file()]
    if missing:
        raise UserError(f"--warm-start {path}: no {', '.join(missing)} there (give a published version, a models root "
                        "or a trained run folder)")
    return path


def differences(path: Path, manifest: dict, config: TrainConfig | None = None) -> list[str]:
    """What makes the model in `path` unfit to start from: other classes or images (or, given a config, networks)."""
    theirs, their_config = (json.loads((path / name).read_text()) for name in ("manifest.json", "config.json"))
    pairs = [("classes", theirs.get("class_names"), manifest.get("class_names")),
             ("image shape", theirs["dataset"]["image_shape"], manifest["dataset"]["image_shape"])]
    if config is not None:
        pairs += [("architecture", their_config.get("architecture"), config.architecture),
                  ("z_dim", their_config.get("z_dim"), config.z_dim)]
    return [f"{what} {a} there, {b} here" for what, a, b in pairs if a != b]


def source(path: Path, manifest: dict, config: TrainConfig) -> Path:
    """The folder to start from; refuses, in one line, one without weights or made for other data or networks."""
    path = find(path)
    if differs := differences(path, manifest, config):
        raise UserError(f"--warm-start {path}: made for other data or networks ({'; '.join(differs)}); train from "
                        "scratch or start from a model of these classes")
    return path


def load(networks, path: Path):
    """Copies the saved weights into a new run's networks (an `sgan.train.SGAN`); both discriminators start from
    the averaged one. Only the weights are read: building the saved models would advance Keras's layer names on
    this worker alone, and Horovod pairs the workers' gradients by names derived from them."""
    for name, model in (("generator", networks.generator), ("discriminator", networks.discriminator)):
        model.load_weights(Path(path) / f"{name}.keras")
    if networks.averaged_discriminator is not None:
        networks.averaged_discriminator.set_weights(networks.discriminator.get_weights())
