"""Data-parallel training with real Horovod workers (`horovodrun -np 2 --gloo`) on loopback."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import tensorflow as tf
from conftest import SGAN, write_idx_dataset
from test_cli import sgan

HOROVODRUN = Path(sys.executable).with_name("horovodrun")
pytestmark = pytest.mark.skipif(not HOROVODRUN.exists(), reason="needs Horovod (scripts/make-env.sh)")


@pytest.fixture(scope="module")
def two_worker_checks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hvd")
    data_dir = write_idx_dataset(tmp / "data")
    result = tmp / "result.json"
    command = [str(HOROVODRUN), "-np", "2", "--gloo", sys.executable, str(Path(__file__).with_name("hvd_checks.py")),
               str(data_dir), str(tmp / "run"), str(result)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(result.read_text())


def test_workers_end_with_identical_weights(two_worker_checks):
    assert two_worker_checks["weights_max_abs_diff"] == 0.0


def test_two_workers_with_batch_b_equal_one_worker_with_batch_2b(two_worker_checks):
    assert two_worker_checks["dense_weights_moved"] > 1e-3
    assert two_worker_checks["two_vs_one_worker_max_abs_diff"] < 1e-5
    assert two_worker_checks["pseudo_label_two_vs_one_worker_max_abs_diff"] < 1e-5
    # float noise through RandAugment's resampling; a worker with the wrong slice of a draw moves weights by ~1e-2
    # (Adam's first steps are about the learning rate, 1e-2, in size)
    assert two_worker_checks["photo_levers_two_vs_one_worker_max_abs_diff"] < 1e-4


def test_fp16_inf_on_one_worker_skips_the_step_on_every_worker(two_worker_checks):
    # per rank: weight after the poisoned step, loss-scale ratio, weight after a finite SGD(0.1) step
    assert two_worker_checks["fp16_per_rank"] == [[1.0, 0.5, pytest.approx(0.9)]] * 2


def test_checkpoint_from_two_workers_resumes_on_one(tmp_path):
    run = tmp_path / "run"
    assert sgan("prepare", "--data", write_idx_dataset(tmp_path / "data"), "--labels", 20, "--run-dir", run).returncode == 0
    two = sgan("train", "--run-dir", run, "--workers", 2, "--iterations", 4, "--batch-size", 8, "--checkpoint-every", 4)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert "2 worker(s) x batch 8 = global batch 16" in two.stdout
    assert tf.train.latest_checkpoint(run / "checkpoints").endswith("ckpt-4")

    one = sgan("train", "--run-dir", run, "--iterations", 6, "--batch-size", 8)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "1 worker(s) x batch 8 = global batch 8, precision fp32, from iteration 4" in one.stdout
    assert tf.train.latest_checkpoint(run / "checkpoints").endswith("ckpt-6")
    assert [r["step"] for r in json.loads((run / "history.json").read_text())][-1] == 6


def test_workers_without_a_manifest_fail_before_launching(tmp_path):
    result = sgan("train", "--run-dir", tmp_path, "--workers", 2)
    assert result.returncode == 2 and "manifest.json: not found" in result.stderr


def test_a_killed_worker_ends_the_sgan_train_launcher_with_one_line(tmp_path):
    """Through the console script, as users type it: the launcher's own command line (`sgan train --run-dir R`)
    must survive the cleanup of R's workers, and say which worker failed, where, and where a rerun resumes."""
    run = tmp_path / "run"
    assert sgan("prepare", "--data", write_idx_dataset(tmp_path / "data"), "--labels", 20, "--run-dir", run).returncode == 0
    launcher = subprocess.Popen([SGAN, "train", "--run-dir", str(run), "--workers", "2", "--iterations", "3000",
                                 "--batch-size", "8", "--checkpoint-every", "10"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 300
        while not (run / "checkpoints" / "ckpt-20.index").exists():
            assert time.time() < deadline and launcher.poll() is None, "no checkpoint appeared"
            time.sleep(0.2)
        rank1 = [p for p in workers_of(run) if p.environ().get("HOROVOD_RANK") == "1"]
        assert len(rank1) == 1
        rank1[0].kill()
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2, out[-2000:] + err[-2000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"sgan: error: training failed: worker 1 on {socket.gethostname()} exited with code"), message
    assert int(re.search(r"resume from iteration (\d+)", message).group(1)) >= 20
    assert not workers_of(run)


def workers_of(run: Path) -> list:
    return [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and f"-m sgan.distributed.worker --run-dir {run} " in " ".join(p.info["cmdline"])]
