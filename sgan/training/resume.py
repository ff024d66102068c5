"""What a rerun resumes from: checkpoints written with the same configuration, the newest one that reads whole.

Checked by the launcher before any worker starts, so a mismatch or a damaged file is one line, not a traceback
from every worker. A damaged checkpoint (truncated by a full disk, a copy or a storage fault) is moved aside to
`checkpoints/damaged/`, never deleted, and the previous one is used.
"""

import json
import re
import shutil
import sys
from pathlib import Path

from sgan.config import TrainConfig
from sgan.errors import UserError, first_line

# Settings a resumed run may change: they shape the schedule and the logging, not what a checkpoint holds.
RESUMABLE = ("iterations", "batch_size", "checkpoint_every", "log_every", "eval_every")


def latest_checkpoint(run_dir: Path) -> int:
    """The iteration of the run's latest checkpoint (0 if none), read from tf.train's `checkpoint` index file."""
    index = Path(run_dir) / "checkpoints" / "checkpoint"
    match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', index.read_text()) if index.exists() else None
    return int(match.group(1)) if match else 0


def check_config(run_dir: Path, requested: dict):
    """Refuses to resume checkpoints written under another configuration (another preset or model options)."""
    saved_path = Path(run_dir) / "config.json"
    if not latest_checkpoint(run_dir) or not saved_path.exists():
        return
    saved = {**TrainConfig().to_dict(), **json.loads(saved_path.read_text())}  # a setting added since: its default
    differs = [f"{k} {saved.get(k)!r} there, {v!r} asked" for k, v in requested.items()
               if k not in RESUMABLE and saved.get(k) != v]
    if differs:
        raise UserError(f"{run_dir}: holds checkpoints trained with another configuration ({'; '.join(differs)}); "
                        "train with the same preset and options to resume, or use a new --run-dir")


def fall_back(run_dir: Path) -> int:
    """Moves damaged checkpoints aside, newest first, until one reads whole; returns its iteration (0: none yet).
    Raises if checkpoints existed and none is usable."""
    directory = Path(run_dir) / "checkpoints"
    if not (directory / "checkpoint").exists():
        return 0
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(str(directory))
    paths = [Path(p).name for p in state.all_model_checkpoint_paths] if state else []
    damaged = []
    while paths:
        newest = directory / paths[-1]
        try:
            reader = tf.train.load_checkpoint(str(newest))
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
            break
        except Exception as e:  # noqa: BLE001 - any failure to read it whole makes it unusable
            aside = directory / "damaged"
            aside.mkdir(exist_ok=True)
            for part in directory.glob(f"{paths[-1]}.*"):
                shutil.move(part, aside / part.name)
            damaged.append(paths.pop())
            print(f"checkpoint {newest} cannot be read ({first_line(e)}); moved to {aside}/, "
                  + (f"resuming from {paths[-1]}" if paths else "no older checkpoint"), file=sys.stderr, flush=True)
            if paths:
                tf.compat.v1.train.update_checkpoint_state(str(directory), paths[-1], paths)
            else:
                (directory / "checkpoint").unlink()
    if damaged and not paths:
        raise UserError(f"no usable checkpoint in {directory}: {', '.join(reversed(damaged))} cannot be read (moved to "
                        f"{directory / 'damaged'}/); start over with a new --run-dir")
    return latest_checkpoint(run_dir)
