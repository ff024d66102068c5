"""Inference with onnxruntime and numpy only: what an edge box runs. Never imports TensorFlow."""

import json
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from sgan.errors import UserError


class InputError(UserError):
    """Images that do not fit the model's input contract."""


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # float32 [N, K]
    classes: np.ndarray  # int64 [N]


class Classifier:
    """An exported sgan classifier: uint8 images [N, H, W, C] in, class probabilities and classes out."""

    def __init__(self, model, max_batch: int = 1024, threads: int = 0):
        """`model`: a path to an .onnx file, or its bytes."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if threads == 1:  # a server's worker processes are its parallelism: no thread pool spinning beside them
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            source = model if isinstance(model, bytes) else str(model)
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/NoSuchFile types
            raise UserError(f"{_name(model)}: not a loadable ONNX model ({e})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if "input_shape" not in props:
            raise UserError(f"{_name(model)}: not an sgan classifier (no input_shape in its metadata)")
        self.metadata = {k: _maybe_json(v) for k, v in props.items()}
        self.image_shape = tuple(self.metadata["input_shape"])
        self.class_names = list(self.metadata.get("class_names", []))
        self.max_batch = max_batch

    def check(self, images) -> np.ndarray:
        """The images as a uint8 [N, H, W, C] array, or an InputError saying what is wrong."""
        if not isinstance(images, np.ndarray):
            raise InputError(f"images must be a numpy array, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise InputError(f"images must be uint8 (0-255), got {images.dtype}")
        if images.ndim == 3 and self.image_shape[-1] == 1:  # [N, H, W] for single-channel models
            images = images[..., None]
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise InputError(f"images must have shape [N, {', '.join(map(str, self.image_shape))}], "
                             f"got {list(images.shape)}")
        return images

    def predict(self, images) -> Prediction:
        images = self.check(images)
        probabilities, classes = [], []
        for start in range(0, len(images), self.max_batch):
            p, c = self.session.run(["probabilities", "class"], {"images": images[start:start + self.max_batch]})
            probabilities.append(p)
            classes.append(c)
        if not probabilities:
            return Prediction(np.zeros((0, len(self.class_names)), np.float32), np.zeros(0, np.int64))
        return Prediction(np.concatenate(probabilities), np.concatenate(classes))


def _name(model) -> str:
    return "model bytes" if isinstance(model, bytes) else str(model)


def _maybe_json(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
