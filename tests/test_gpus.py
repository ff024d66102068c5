"""One GPU per Horovod worker, decided before TensorFlow places anything. No GPU here: a stand-in for
TensorFlow's device list (tests/gpu_stand_in) lets the real decision run, in-process and in real workers."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tensorflow as tf
from conftest import SGAN, write_idx_dataset

from sgan.distributed.horovod import use_gpus
from sgan.errors import UserError

HOROVODRUN = Path(sys.executable).with_name("horovodrun")
ROOT = Path(__file__).resolve().parents[1]


def devices(count: int):
    """A stand-in for tf.config with `count` GPUs, recording what is made visible and allowed to grow."""
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]
    calls = SimpleNamespace(visible=None, growth=[])
    config = SimpleNamespace(
        list_physical_devices=lambda kind=None: list(gpus) if kind == "GPU" else [],
        set_visible_devices=lambda chosen, kind=None: setattr(calls, "visible", [d.name for d in chosen]),
        experimental=SimpleNamespace(set_memory_growth=lambda gpu, on: calls.growth.append((gpu.name, on))))
    return config, calls


@pytest.mark.parametrize("local_rank", [0, 1, 3])
def test_a_horovod_worker_sees_only_the_gpu_of_its_local_rank_and_lets_its_memory_grow(local_rank):
    config, calls = devices(4)
    assert use_gpus(local_rank, 4, horovod_worker=True, config=config) == f"GPU {local_rank}"
    assert calls.visible == [f"/physical_device:GPU:{local_rank}"]
    assert calls.growth == [(f"/physical_device:GPU:{local_rank}", True)]


def test_one_process_keeps_every_gpu_with_memory_growth():
    config, calls = devices(2)
    assert use_gpus(0, 1, horovod_worker=False, config=config) == "GPU 0-1"
    assert calls.visible == ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert calls.growth == [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)]


@pytest.mark.parametrize("horovod_worker", [True, False])
def test_without_gpus_nothing_changes(horovod_worker):
    config, calls = devices(0)
    assert use_gpus(0, 2, horovod_worker=horovod_worker, config=config) == "CPU"
    assert calls.visible is None and calls.growth == []


def test_more_workers_on_a_node_than_gpus_is_refused_before_anything_is_placed():
    config, calls = devices(2)
    with pytest.raises(UserError, match=rf"^3 workers on {socket.gethostname()} but 2 GPU\(s\) there: "):
        use_gpus(2, 3, horovod_worker=True, config=config)
    assert calls.visible is None and calls.growth == []


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpus")
    run = tmp / "run"
    subprocess.run([SGAN, "prepare", "--data", write_idx_dataset(tmp / "data"), "--labels", "20", "--run-dir", run],
                   check=True, capture_output=True)
    return run


def train_with_gpus(run: Path, gpus: int, workers: int, log: Path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).with_name("gpu_stand_in")), "SGAN_TEST_GPUS": str(gpus),
           "SGAN_TEST_GPU_LOG": str(log), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([SGAN, "train", "--run-dir", run, "--workers", str(workers), "--iterations", "2",
                           "--batch-size", "8", "--precision", "fp32"], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.skipif(not HOROVODRUN.exists(), reason="needs Horovod (scripts/make-env.sh)")
def test_sgan_train_gives_each_of_two_workers_its_own_gpu(prepared, tmp_path):
    done = train_with_gpus(prepared, gpus=2, workers=2, log=tmp_path / "gpus.jsonl")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    host = socket.gethostname()
    assert f"worker 0 of 2 on {host}: GPU 0" in done.stdout and f"worker 1 of 2 on {host}: GPU 1" in done.stdout
    records = [json.loads(line) for line in (tmp_path / "gpus.jsonl").read_text().splitlines()]
    visible = sorted(r["visible"] for r in records if "visible" in r)
    assert visible == [["/physical_device:GPU:0"], ["/physical_device:GPU:1"]]  # one call per worker, each its own
    assert sorted(r["growth"] for r in records if "growth" in r) == ["/physical_device:GPU:0", "/physical_device:GPU:1"]


@pytest.mark.skipif(not HOROVODRUN.exists(), reason="needs Horovod (scripts/make-env.sh)")
def test_two_workers_on_one_gpu_stop_with_one_line_and_exit_2(prepared, tmp_path):
    checkpoints = sorted((prepared / "checkpoints").glob("*")) if (prepared / "checkpoints").exists() else []
    done = train_with_gpus(prepared, gpus=1, workers=2, log=tmp_path / "gpus.jsonl")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"sgan: error: 2 workers on {socket.gethostname()} but 1 GPU(s) there: give each node at most "
                    "one worker per GPU (its slots in --hosts or the hostfile, or --workers)"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert checkpoints == (sorted((prepared / "checkpoints").glob("*")) if checkpoints else [])
    assert not (tmp_path / "gpus.jsonl").exists()  # nothing was made visible, nothing allowed to grow


def test_the_gpu_check_says_there_is_no_gpu_here_and_exits_0(tmp_path):
    done = subprocess.run([sys.executable, ROOT / "benchmarks" / "gpu_check.py", "--results", tmp_path / "r.jsonl"],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["gpus"] == 0 and line["checked"] is False and not (tmp_path / "r.jsonl").exists()


@pytest.mark.skipif(not HOROVODRUN.exists(), reason="needs Horovod (scripts/make-env.sh)")
def test_the_gpu_check_starts_one_worker_per_gpu_and_reports_its_device_precision_and_rate(tmp_path):
    """With two stand-in GPUs (the computation stays on the CPU): the check's own code path, end to end."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).with_name("gpu_stand_in")), "SGAN_TEST_GPUS": "2",
           "SGAN_TEST_GPU_LOG": str(tmp_path / "gpus.jsonl"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, ROOT / "benchmarks" / "gpu_check.py", "--steps", "2", "--warmup", "1",
                           "--batch-size", "8", "--results", tmp_path / "r.jsonl"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = json.loads((tmp_path / "r.jsonl").read_text())
    assert line["gpus"] == 2 and line["checked"] and line["one_gpu_each"] and line["batch_size"] == 8
    assert [w["device"] for w in line["workers"]] == ["GPU 0", "GPU 1"]
    assert all(w["precision"] == "fp16" and w["policy"] == "mixed_float16" for w in line["workers"])
    assert all(w["loss_scale"] > 0 and w["iterations_per_s"] > 0 for w in line["workers"])
