"""What `sgan label` does to an image folder: rank its unlabeled images by how unsure the model is, move each
answered one into `labeled/<class>/` (and back on undo), and follow a retraining flow run to its new version.

Moves are serialised by one lock and never overwrite: a file answered twice (two browser tabs) moves once and the
second answer is told it is gone. onnxruntime, numpy and Pillow only.
"""

import collections
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from deploy import follow, labeling, registry
from sgan import images
from sgan.errors import UserError


class LabelError(UserError):
    """An answer that cannot be carried out: its HTTP status and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Suggestion:
    file: str  # relative to unlabeled/, with forward slashes
    guess: str
    confidence: float
    entropy: float


class Labeler:
    def __init__(self, folder: Path, model: Path):
        self.folder = folder.resolve()
        self.unlabeled, self.labeled = self.folder / "unlabeled", self.folder / "labeled"
        if not self.unlabeled.is_dir() or not self.labeled.is_dir():
            raise UserError(f"{folder}: not an image folder (labeled/<class>/ and unlabeled/ are needed)")
        if not self.classes():
            raise UserError(f"{self.labeled}: holds no class folder")
        self.model = model
        self.lock = threading.Lock()
        self.moves: list[tuple[Path, Path]] = []  # (from, to), newest last: what undo takes back
        self.skipped: set[str] = set()
        self.load_model()

    def load_model(self):
        """The model to rank by (a models root: what `latest` serves now), and every unlabeled image ranked."""
        served = follow.load(self.model, max_batch=256)
        if set(served.classifier.class_names) != set(self.classes()):
            raise UserError(f"{served.path}: classes {served.classifier.class_names} differ from {self.labeled}'s "
                            f"{self.classes()}")
        files = images.image_files(self.unlabeled)
        array, kept, _ = labeling.read_images(files, served.classifier.image_shape)  # unreadable ones stay unranked
        probabilities = labeling.classify(served.classifier, array)
        order = labeling.most_uncertain(probabilities, len(kept))
        uncertainty = labeling.entropy(probabilities)
        names = served.classifier.class_names
        ranked = [Suggestion(kept[i].relative_to(self.unlabeled).as_posix(), names[int(probabilities[i].argmax())],
                             round(float(probabilities[i].max()), 4), round(float(uncertainty[i]), 4)) for i in order]
        with self.lock:
            self.served, self.ranked = served, ranked

    def classes(self) -> list[str]:
        return sorted(p.name for p in self.labeled.iterdir() if p.is_dir() and not p.name.startswith("."))

    def counts(self) -> dict:
        return {name: len(images.image_files(self.labeled / name)) for name in self.classes()}

    def batch(self, size: int) -> list[Suggestion]:
        """The next `size` images the model is least sure of, among those still unlabeled and not skipped."""
        with self.lock:
            left = (s for s in self.ranked if s.file not in self.skipped and (self.unlabeled / s.file).is_file())
            return [s for s, _ in zip(left, range(size))]

    def inside(self, relative: str, root: Path) -> Path:
        """`root / relative`, refused (403) if it leaves `root`, and 404 if there is no such image there."""
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise LabelError(403, f"{relative}: outside {root.name}/")
        if path.suffix.lower() not in images.EXTENSIONS or not path.is_file():
            raise LabelError(404, f"{relative}: no such image in {root.name}/")
        return path

    def label(self, relative: str, name: str) -> str:
        """Moves unlabeled/`relative` into labeled/`name`/ under a name no file there has; returns that path."""
        if name not in self.classes():
            raise LabelError(422, f"{name!r}: not a class of labeled/ ({', '.join(self.classes())})")
        with self.lock:
            if any(source == self.unlabeled / relative for source, _ in self.moves):
                raise LabelError(409, f"{relative}: already labeled")
            source = self.inside(relative, self.unlabeled)
            target = _free_name(self.labeled / name / source.name)
            _move(source, target)
            self.moves.append((source, target))
        return target.relative_to(self.folder).as_posix()

    def undo(self) -> str:
        """Moves the last answered image back to where it was in unlabeled/; returns that path."""
        with self.lock:
            if not self.moves:
                raise LabelError(409, "nothing to undo")
            source, target = self.moves[-1]
            if not target.is_file():
                self.moves.pop()
                raise LabelError(409, f"{target.relative_to(self.folder)}: no longer there, so it cannot move back")
            _move(target, source)
            self.moves.pop()
            self.skipped.discard(source.relative_to(self.unlabeled).as_posix())
        return source.relative_to(self.folder).as_posix()

    def skip(self, relative: str):
        self.inside(relative, self.unlabeled)
        with self.lock:
            self.skipped.add(relative)


def _free_name(path: Path) -> Path:
    """`path`, or `stem-2.ext`, `stem-3.ext`...: the first name no file has."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _move(source: Path, target: Path):
    """A rename within the folder, which never replaces a file: the link fails if `target` appeared meanwhile."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)
    os.unlink(source)


class Retraining:
    """One flow run at a time, started by `command`, its output kept (and printed, with `echo`), and its outcome
    read from the models root."""

    def __init__(self, command: list[str], models_root: Path, on_promoted, echo: bool = False):
        self.command, self.models_root, self.on_promoted, self.echo = command, models_root, on_promoted, echo
        self.process, self.lines = None, collections.deque(maxlen=40)
        self.before, self.known, self.outcome = None, set(), None

    def start(self):
        if self.process and self.process.poll() is None:
            raise LabelError(409, "a retraining run is already running")
        rows = self._rows()
        self.before, self.known = next((row for row in rows if row["latest"]), None), {row["version"] for row in rows}
        self.outcome = None
        self.lines.clear()
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        bufsize=1)
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def wait(self) -> dict:
        self.thread.join()
        return self.status()

    def _rows(self) -> list[dict]:
        return registry.rows(self.models_root) if self.models_root.is_dir() else []

    def _follow(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip()[-300:])
            if self.echo:
                print(line, end="", flush=True)
        code = self.process.wait()
        after = next((row for row in reversed(self._rows()) if row["version"] not in self.known), None)
        if after and after["latest"]:
            try:
                self.on_promoted()
            except UserError as e:
                self.lines.append(f"the new model cannot rank this folder: {e}")
        self.outcome = {"exit_code": code, "after": after}

    def status(self) -> dict:
        running = self.process is not None and self.outcome is None
        state = "idle" if self.process is None else "running" if running else (
            "done" if self.outcome["after"] else "failed")
        after = self.outcome["after"] if self.outcome else None
        return {"state": state, "log": list(self.lines)[-12:], "before": self.before, "after": after,
                "promoted": bool(after and after["latest"]),
                "exit_code": self.outcome["exit_code"] if self.outcome else None}
