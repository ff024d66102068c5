"""Help with labeling the rest: classify many images with the ONNX model, write a CSV of its guesses, and rank
and draw the images it is least sure about (the ones worth labeling next). onnxruntime, numpy and Pillow only.
"""

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from sgan import atomic, images
from sgan.errors import UserError


def image_files(paths) -> list[Path]:
    """The files among `paths`, folders replaced by the PNG/JPEG files below them."""
    return [f for path in map(Path, paths) for f in (images.image_files(path) if path.is_dir() else [path])]


def read_images(files: list[Path], shape: tuple) -> tuple[np.ndarray, list[Path], list[tuple]]:
    """(images [n, H, W, C] in the model's shape, the files they came from, [(file, reason)] for unreadable ones)."""
    array, kept, skipped = np.zeros((len(files), *shape), np.uint8), [], []
    for path in tqdm(files, desc="sgan predict: reading", unit="image", mininterval=1, disable=len(files) < 1000):
        try:
            with images.open_image(path, images.FILE_MAX_PIXELS) as image:
                array[len(kept)] = images.to_shape(image, shape)
            kept.append(path)
        except Exception as e:  # noqa: BLE001 - one bad file among thousands is reported, not fatal
            skipped.append((path, f"{type(e).__name__}: {str(e).replace(repr(str(path)), 'the file')}"))
    return array[:len(kept)], kept, skipped


def classify(classifier, array: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities [n, K], batch by batch with a progress bar."""
    probabilities = [np.zeros((0, len(classifier.class_names)), np.float32)]
    for start in tqdm(range(0, len(array), batch_size), desc="sgan predict", unit="batch", mininterval=1,
                      disable=len(array) <= batch_size):
        probabilities.append(classifier.predict(np.asarray(array[start:start + batch_size])).probabilities)
    return np.concatenate(probabilities)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def most_uncertain(probabilities: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k images with the highest predictive entropy, most uncertain first."""
    return np.argsort(-entropy(probabilities), kind="stable")[:k]


def write_csv(path, names: list, class_names: list, probabilities: np.ndarray):
    """path,label,probability[,entropy]: one row per image, written whole or not at all."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "label", "probability", "entropy"])
    classes, uncertainty = probabilities.argmax(axis=1), entropy(probabilities)
    for name, k, p, h in zip(names, classes, probabilities, uncertainty):
        writer.writerow([name, class_names[k], f"{p[k]:.6f}", f"{h:.6f}"])
    atomic.write_bytes(path, buffer.getvalue().encode())


def draw_grid(array: np.ndarray, captions: list[str], path, cell: int = 96, columns: int = 8):
    """The images, enlarged, each over its caption (the model's guess): for a person to look at."""
    if not len(array):
        raise UserError("no images to draw")
    rows = -(-len(array) // columns)
    caption_height = 14
    sheet = Image.new("RGB", (columns * cell, rows * (cell + caption_height)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(array, captions)):
        x, y = (i % columns) * cell, (i // columns) * (cell + caption_height)
        tile = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
        sheet.paste(tile.resize((cell - 4, cell - 4), Image.Resampling.NEAREST), (x + 2, y + 2))
        draw.text((x + 3, y + cell), caption[:16], fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic.write_bytes(path, buffer.getvalue())


def draw_uncertain(array: np.ndarray, probabilities: np.ndarray, class_names: list, k: int, path) -> np.ndarray:
    """Draws the k least certain images, each captioned with the model's guess and its probability; their indices."""
    chosen = most_uncertain(probabilities, k)
    if len(chosen):
        draw_grid(array[chosen], [f"{class_names[int(probabilities[i].argmax())]} {probabilities[i].max():.2f}"
                                  for i in chosen], path)
    return chosen


def suggest(classifier, array: np.ndarray, names: list, csv_path, grid_path, k: int = 32) -> list[dict]:
    """The CSV of guesses for every image, the grid of the k least certain, and those k as records."""
    probabilities = classify(classifier, array)
    write_csv(csv_path, names, classifier.class_names, probabilities)
    chosen = draw_uncertain(array, probabilities, classifier.class_names, k, grid_path)
    uncertainty = entropy(probabilities[chosen])
    return [{"path": str(names[i]), "guess": classifier.class_names[int(probabilities[i].argmax())],
             "probability": round(float(probabilities[i].max()), 4), "entropy": round(float(h), 4)}
            for i, h in zip(chosen, uncertainty)]


def suggest_for_run(run_dir, count: int = 32) -> tuple[list[dict], int]:
    """`suggest` over a trained run's unlabeled images (named by file for an image folder), into predictions.csv and
    to_label.png in the run folder; returns the chosen records and how many images were classified."""
    import json

    from deploy.runtime import Classifier
    from sgan.data.dataset import UNLABELED
    from sgan.run import RunDir

    run = RunDir(run_dir)
    dataset = run.dataset()
    rows = np.flatnonzero(dataset.y_train == UNLABELED)
    contiguous = len(rows) and rows[-1] - rows[0] + 1 == len(rows)
    images = dataset.x_train[rows[0]:rows[-1] + 1] if contiguous else dataset.x_train[rows]  # a slice: on disk
    cache = run.manifest()["dataset"].get("cache")  # an image folder's: it lists the unlabeled files in order
    names = json.loads((Path(cache) / "unlabeled.json").read_text()) if cache else \
        [f"x_unlabeled[{i}]" for i in range(len(rows))]
    chosen = suggest(Classifier(run / "model.onnx"), images, names, run / "predictions.csv", run / "to_label.png", count)
    return chosen, len(rows)
