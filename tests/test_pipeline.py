"""The Prefect flow end to end: real flow runs on Prefect's embedded API (and a real server for deployments),
real horovodrun workers, real ONNX files."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import SGAN, write_idx_dataset

PREFECT = Path(sys.executable).with_name("prefect")


def _env(prefect_home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(prefect_home), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def pipeline(tmp: Path, *args, wait=True):
    command = [SGAN, "pipeline", "--data", str(tmp / "data"), "--labels", "20",
               "--batch-size", "8", "--output-root", str(tmp / "out"), *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=_env(tmp / "prefect-home"))
    if not wait:
        return process
    output, _ = process.communicate(timeout=600)
    return process.returncode, output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    write_idx_dataset(tmp / "data")
    return tmp


def test_two_worker_flow_publishes_and_a_failed_gate_keeps_latest(workspace):
    # A fresh PREFECT_HOME: the first start of the embedded API must not time out.
    code, output = pipeline(workspace, "--workers", 2, "--iterations", 20, "--accuracy-gate", 0)
    assert code == 0, output[-4000:]
    assert "2 worker(s) x batch 8 = global batch 16" in output
    models = workspace / "out" / "models"
    assert os.readlink(models / "latest") == "v0001"
    for name in ("model.onnx", "metrics.json", "manifest.json", "onnx_report.json", "MODEL_CARD.md",
                 "confusion_matrix.png", "samples.png", "learning_curves.png"):
        assert (models / "v0001" / name).exists(), name
    report = json.loads((models / "v0001" / "onnx_report.json").read_text())
    assert report["float"]["parity"]["max_abs_diff"] <= 1e-5 and report["float"]["parity"]["same_class"] >= 0.9999
    assert "ONNX parity: max |p_tf - p_onnx|" in output and "latest:" in output and "wall time" in output

    code, output = pipeline(workspace, "--workers", 1, "--iterations", 10, "--accuracy-gate", 1.01)
    assert code == 2, output[-4000:]
    assert "is below the gate 101.00%" in output and "`latest` left unchanged" in output
    assert "Task run 'prepare_dataset" in output and "Cached" in output  # same data, labels and seed
    assert os.readlink(models / "latest") == "v0001" and (models / "v0002" / "model.onnx").exists()


def test_killed_training_is_resumed_by_the_retry(workspace):
    tmp = workspace / "killed"
    write_idx_dataset(tmp / "data")
    process = pipeline(tmp, "--workers", 1, "--iterations", 400, "--checkpoint-every", 25, "--accuracy-gate", 0,
                       wait=False)
    deadline = time.time() + 300
    while not list((tmp / "out").glob("runs/*/checkpoints/ckpt-50.index")):
        assert time.time() < deadline and process.poll() is None, "no checkpoint appeared"
        time.sleep(0.1)
    trainers = [p for p in psutil.process_iter(["cmdline"])
                if "sgan.cli" in (p.info["cmdline"] or []) and "train" in p.info["cmdline"]
                and str(tmp) in " ".join(p.info["cmdline"])]
    assert len(trainers) == 1
    trainers[0].send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    assert "training exited with code -9" in output
    starts = [int(n) for n in re.findall(r"precision fp32, from iteration (\d+)", output)]
    assert starts[0] == 0 and starts[-1] >= 50, starts  # the second attempt resumed
    history = json.loads(next((tmp / "out").glob("runs/*/history.json")).read_text())
    assert history[-1]["step"] == 400


def test_a_killed_flow_leaves_no_trainer_and_the_same_command_resumes(workspace):
    """The flow process (and the embedded Prefect API inside it) killed mid-training: its trainer dies with it;
    the same command again skips prepare (cached) and resumes the same run folder from its checkpoint."""
    tmp = workspace / "killed-flow"
    write_idx_dataset(tmp / "data")
    args = ("--workers", 1, "--iterations", 400, "--checkpoint-every", 25, "--accuracy-gate", 0)
    process = pipeline(tmp, *args, wait=False)
    try:
        deadline = time.time() + 300
        while not list((tmp / "out").glob("runs/*/checkpoints/ckpt-50.index")):
            assert time.time() < deadline and process.poll() is None, "no checkpoint appeared"
            time.sleep(0.1)
        spawned = psutil.Process(process.pid).children(recursive=True)  # the trainer and the embedded Prefect API
    finally:
        process.kill()
    process.wait(timeout=30)
    for child in spawned:  # the API server outlives a killed flow (Prefect starts it); the trainer must not
        with contextlib.suppress(psutil.Error):  # gone, or a zombie, already
            if "prefect.server" in " ".join(child.cmdline()):
                child.kill()
    [run_dir] = (tmp / "out" / "runs").iterdir()
    deadline = time.time() + 20
    while any(str(run_dir) in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])):
        assert time.time() < deadline, "the trainer outlived the killed flow"
        time.sleep(0.2)

    code, output = pipeline(tmp, *args)
    assert code == 0, output[-4000:]
    assert "Task run 'prepare_dataset" in output and "Cached" in output
    starts = [int(n) for n in re.findall(r"from iteration (\d+)", output)]
    assert starts and starts[0] >= 50, starts
    assert [p.name for p in (tmp / "out" / "runs").iterdir()] == [run_dir.name]
    assert json.loads((run_dir / "history.json").read_text())[-1]["step"] == 400


def test_deployment_run_triggered_through_the_cli_completes(workspace, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path / "prefect-home", PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false")
    server = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served = None
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        served = subprocess.Popen([sys.executable, "-m", "pipeline.serve"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        out = tmp_path / "out"
        command = [str(PREFECT), "deployment", "run", "sgan-pipeline/default", "-p", f"data={workspace / 'data'}",
                   "-p", "labels=20", "-p", "workers=1", "-p", "iterations=10", "-p", "batch_size=8",
                   "-p", "accuracy_gate=0", "-p", f"output_root={out}", "--watch"]
        for _ in range(60):  # the deployment exists once `serve` has registered it
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            if "not found" not in (result.stdout + result.stderr).lower():
                break
            time.sleep(1)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Completed" in result.stdout
        assert os.readlink(out / "models" / "latest") == "v0001"
    finally:
        for process in (served, server):
            if process:
                process.terminate()
                process.wait(timeout=30)
