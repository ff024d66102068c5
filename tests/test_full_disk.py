"""A full disk loses nothing: prepare's cache, checkpoints, the saved models, the ONNX export and publishing each
meet "no space left on device" on a small tmpfs the test mounts. Each says so in one line naming what could not
be written, leaves no half-written file under a final name, and the same command completes once space is freed."""

import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import write_idx_dataset, write_image_folder
from test_cli import sgan

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounts a tmpfs: needs root")


@contextmanager
def small_disk(path: Path, size: str):
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Takes all but `leave` bytes of the disk with one file; deleting it frees the space."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, stat.f_bavail * stat.f_frsize - leave)
    return filler


def one_line(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("sgan: error: ")]
    assert len(lines) == 1 and "no space left on device" in lines[0], result.stderr[-3000:]
    return lines[0]


def test_prepare_cache(tmp_path):
    folder = write_image_folder(tmp_path / "data")
    with small_disk(tmp_path / "disk", "1m") as disk:
        filler = fill(disk, leave=8192)
        result = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", "--cache-dir", disk / "cache")
        assert f"writing {disk / 'cache'}/" in one_line(result)
        assert list((disk / "cache").iterdir()) == []  # the staging folder went with the error
        assert not (tmp_path / "run" / "manifest.json").exists()
        filler.unlink()
        result = sgan("prepare", "--data", folder, "--run-dir", tmp_path / "run", "--cache-dir", disk / "cache")
        assert result.returncode == 0, result.stderr[-2000:]


def test_checkpoints_saved_models_and_the_onnx_export(tmp_path):
    data = write_idx_dataset(tmp_path / "data")
    train = ("train", "--preset", "seed", "--iterations", 10, "--batch-size", 8, "--checkpoint-every", 5)
    with small_disk(tmp_path / "disk", "256m") as disk:
        run = disk / "run"
        assert sgan("prepare", "--data", data, "--labels", 20, "--run-dir", run).returncode == 0
        filler = fill(disk, leave=256 * 1024)  # room for the config and logs, not for a checkpoint
        line = one_line(sgan(*train, "--run-dir", run))
        assert f"writing {run / 'checkpoints' / 'ckpt-5'}" in line
        assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("ckpt-5")]
        filler.unlink()
        result = sgan(*train, "--run-dir", run)
        assert result.returncode == 0 and (run / "checkpoints" / "ckpt-10.index").exists(), result.stderr[-2000:]

        for model in ("generator.keras", "discriminator.keras"):
            (run / model).unlink()
        filler = fill(disk, leave=64 * 1024)  # the rerun restores iteration 10 and only saves the models
        assert f"writing {run / 'generator.keras'}" in one_line(sgan(*train, "--run-dir", run))
        assert not (run / "generator.keras").exists() and not list(run.glob(".generator.keras*"))
        filler.unlink()
        assert sgan(*train, "--run-dir", run).returncode == 0 and (run / "discriminator.keras").exists()

        filler = fill(disk, leave=64 * 1024)
        assert f"writing {run / 'model.onnx'}" in one_line(sgan("export", "--run-dir", run))
        assert not (run / "model.onnx").exists() and not list(run.glob(".model.onnx*"))
        filler.unlink()
        result = sgan("export", "--run-dir", run)
        assert result.returncode == 0 and (run / "model.onnx").exists(), result.stderr[-2000:]


def test_publishing_leaves_latest_on_a_complete_version(exported_run, tmp_path):
    from deploy.publish import publish
    from sgan.errors import UserError

    run = tmp_path / "run"
    shutil.copytree(exported_run[0], run)
    assert sgan("evaluate", "--run-dir", run, "--no-baseline").returncode == 0
    (run / "onnx_report.json").write_text(json.dumps(exported_run[1]))
    with small_disk(tmp_path / "disk", "16m") as disk:  # room for two versions, each with its Keras weights
        assert publish(run, disk, accuracy_gate=0).name == "v0001"
        filler = fill(disk, leave=64 * 1024)
        with pytest.raises(UserError, match=f"no space left on device writing {disk / 'v0002'}"):
            publish(run, disk, accuracy_gate=0)
        assert sorted(p.name for p in disk.iterdir() if not p.name.startswith(".")) == [
            "filler", "history.jsonl", "latest", "v0001"]
        assert os.readlink(disk / "latest") == "v0001"
        filler.unlink()
        assert publish(run, disk, accuracy_gate=0).name == "v0002" and os.readlink(disk / "latest") == "v0002"
