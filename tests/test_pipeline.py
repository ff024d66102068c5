"""The Prefect flow end to end: real flow runs on Prefect's embedded API (and a real server for deployments),
real horovodrun workers, real ONNX files."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from conftest import NOISE, PREFECT, SGAN, flow_env, free_port, prefect_server, write_idx_dataset, write_image_folder
from PIL import Image
from test_cli import sgan
from test_follow import Load


def pipeline(tmp: Path, *args, wait=True, data=None, api=None):
    """`sgan pipeline` as users type it; on MNIST-format IDX files with 20 labels unless `data` (an image folder);
    on the embedded Prefect API unless `api` (a running `prefect server`'s URL)."""
    source = ["--data", str(data)] if data else ["--data", str(tmp / "data"), "--labels", "20"]
    command = [SGAN, "pipeline", *source, "--batch-size", "8", "--output-root", str(tmp / "out"), *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=flow_env(tmp / "prefect-home", **({"PREFECT_API_URL": api} if api else {})))
    if not wait:
        return process
    output, _ = process.communicate(timeout=600)
    return process.returncode, output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    write_idx_dataset(tmp / "data")
    return tmp


def test_the_loop_new_labels_a_better_model_served_a_worse_one_refused_and_a_rollback(tmp_path, prefect_api):
    """From an image folder: v1 by two Horovod workers, served by `sgan serve MODELS_ROOT` (2 processes) under a
    steady load (the fastest answers and switches under full load are test_follow's); new labels -> v2 (two
    workers, warm-started from v1) promoted and served; far fewer iterations -> refused; the same inputs again ->
    nothing to do; `sgan models rollback` -> v1 served. No request fails, and versions change only at the switches."""
    data = write_image_folder(tmp_path / "photos", labeled_per_class=2, unlabeled=60, test_per_class=20)
    models = tmp_path / "out" / "models"
    api = prefect_api  # as operators run it: one API for every run
    code, output = pipeline(tmp_path, "--preset", "seed", "--workers", 2, "--iterations", 50, "--accuracy-gate", 0,
                            data=data, api=api)
    assert code == 0, output[-4000:]
    assert "2 worker(s) x batch 8 = global batch 16" in output
    assert os.readlink(models / "latest") == "v0001"
    for name in ("model.onnx", "metrics.json", "manifest.json", "onnx_report.json", "provenance.json",
                 "MODEL_CARD.md", "confusion_matrix.png", "samples.png", "learning_curves.png"):
        assert (models / "v0001" / name).exists(), name
    report = json.loads((models / "v0001" / "onnx_report.json").read_text())
    assert report["float"]["parity"]["max_abs_diff"] <= 1e-5 and report["float"]["parity"]["same_class"] >= 0.9999
    assert "ONNX parity: max |p_tf - p_onnx|" in output and "latest:" in output and "wall time" in output
    assert not NOISE.search(output), NOISE.search(output)  # a good run's log: nothing a user must learn to ignore

    port = free_port()
    server = subprocess.Popen([SGAN, "serve", str(models), "--port", str(port), "--processes", "2",
                               "--poll-seconds", "0.5"], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    load = None
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            time.sleep(0.2)
        image = np.asarray(Image.open(data / "test" / "cat" / "t0.png"))
        load = Load(url, image, pause=0.05)  # 4 clients x up to 20 requests/s, beside two training workers
        time.sleep(1)
        write_image_folder(tmp_path / "more", labeled_per_class=8, unlabeled=0, test_per_class=0, seed=1)
        for folder in (tmp_path / "more" / "labeled").iterdir():  # new labels arrive
            for file in folder.iterdir():
                file.rename(data / "labeled" / folder.name / f"new-{file.name}")
        args = ("--preset", "seed", "--workers", 2, "--iterations", 50, "--accuracy-gate", 0, "--warm-start")
        retrained = time.monotonic()
        code, output = pipeline(tmp_path, *args, data=data, api=api)
        assert code == 0, output[-4000:]
        assert os.readlink(models / "latest") == "v0002", output[-4000:]
        assert f"--warm-start {models / 'v0001'}" in output  # from v1's weights, on two workers
        promoted = time.monotonic()
        switched = load.wait_for("v0002", promoted)

        code, output = pipeline(tmp_path, *args[:2], "--workers", 1, "--iterations", 2, "--accuracy-gate", 0, data=data,
                                api=api)
        assert code == 3 and "worse than v0002" in output and "`latest` left unchanged" in output, output[-4000:]
        assert "v0003 published, NOT promoted" in output and "sgan models promote v0003" in output  # what next
        assert "Finished in state Completed" in output and "Traceback" not in output, output[-4000:]
        assert "Task run 'prepare_dataset" in output and "Cached" in output  # the same images
        started = time.monotonic()
        code, output = pipeline(tmp_path, *args[:2], *args[4:], "--workers", 1, "--batch-size", 16, data=data,
                                api=api)  # placement only: the same global batch of 16 on one worker
        assert code == 0 and "nothing to do: `latest` (v0002) was made from the same data" in output, output[-4000:]
        assert "sgan train" not in output and not (models / "v0004").exists()
        unchanged_s = time.monotonic() - started

        rolled = time.monotonic()
        result = sgan("models", "--models-root", models, "rollback")
        assert result.returncode == 0 and "latest -> v0001 (rolled back from v0002)" in result.stdout
        back = load.wait_for("v0001", rolled)
        time.sleep(1)
    finally:
        answers = load.finish() if load else []
        server.terminate()
        server.wait(timeout=30)
    assert unchanged_s < 30, unchanged_s  # the process's start-up, and no task
    assert len(answers) > 100 and all(status == 200 for _, status, _, _ in answers), \
        [a for a in answers if a[1] != 200][:3]
    for start, end, version in ((0, retrained, "v0001"), (switched, rolled, "v0002"), (back, float("inf"), "v0001")):
        assert {v for t, _, v, _ in answers if start <= t < end} == {version}
    listing = sgan("models", "--models-root", models, "list").stdout
    for fragment in ("promoted: no model in production yet", "promoted: not worse than v0001",
                     "refused: worse than v0002", "* v0001"):
        assert fragment in listing, listing


def test_killed_training_is_resumed_by_the_retry(workspace, prefect_api):
    tmp = workspace / "killed"
    write_idx_dataset(tmp / "data")
    process = pipeline(tmp, "--workers", 1, "--iterations", 200, "--checkpoint-every", 25, "--accuracy-gate", 0,
                       wait=False, api=prefect_api)
    deadline = time.time() + 300
    while not list((tmp / "out").glob("runs/*/checkpoints/ckpt-50.index")):
        assert time.time() < deadline and process.poll() is None, "no checkpoint appeared"
        time.sleep(0.1)
    trainers = [p for p in psutil.process_iter(["cmdline"])
                if "cli" in (p.info["cmdline"] or []) and "train" in p.info["cmdline"]
                and str(tmp) in " ".join(p.info["cmdline"])]
    assert len(trainers) == 1
    trainers[0].send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    assert "training exited with code -9" in output
    starts = [int(n) for n in re.findall(r"precision fp32, from iteration (\d+)", output)]
    assert starts[0] == 0 and starts[-1] >= 50, starts  # the second attempt resumed
    history = json.loads(next((tmp / "out").glob("runs/*/history.json")).read_text())
    assert history[-1]["step"] == 200


def test_a_killed_flow_leaves_no_trainer_and_the_same_command_resumes(workspace, prefect_api):
    """The flow process (and the embedded Prefect API inside it) killed mid-training: its trainer dies with it;
    the same command again skips prepare (cached) and resumes the same run folder from its checkpoint. The cache
    is the Prefect home's, whichever API the run reports to: the second run reports to a server."""
    tmp = workspace / "killed-flow"
    write_idx_dataset(tmp / "data")
    args = ("--workers", 1, "--iterations", 200, "--checkpoint-every", 25, "--accuracy-gate", 0)
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

    code, output = pipeline(tmp, *args, api=prefect_api)
    assert code == 0, output[-4000:]
    assert "Task run 'prepare_dataset" in output and "Cached" in output
    starts = [int(n) for n in re.findall(r"from iteration (\d+)", output)]
    assert starts and starts[0] >= 50, starts
    assert [p.name for p in (tmp / "out" / "runs").iterdir()] == [run_dir.name]
    assert json.loads((run_dir / "history.json").read_text())[-1]["step"] == 200


def test_deployment_on_a_schedule_and_triggered_through_the_cli(workspace, tmp_path):
    """`python -m pipeline.serve --every 4 -p ...` against a real Prefect server: runs come on the schedule, one at a
    time; the first publishes v0001, a triggered run (`prefect deployment run`) and the later scheduled ones, on the
    same data, end with nothing to do."""
    with prefect_server(tmp_path / "prefect-home", PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
                        PREFECT_RUNNER_POLL_FREQUENCY="2") as (api, env):
        out = tmp_path / "out"
        parameters = [f"data={workspace / 'data'}", "labels=20", "workers=1", "iterations=10", "batch_size=8",
                      "accuracy_gate=0", f"output_root={out}"]
        served = subprocess.Popen([sys.executable, "-m", "pipeline.serve", "--every", "4",
                                   *[a for p in parameters for a in ("-p", p)]],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            command = [str(PREFECT), "deployment", "run", "sgan-pipeline/default", "--watch"]
            for _ in range(60):  # the deployment exists once `serve` has registered it
                result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
                if "not found" not in (result.stdout + result.stderr).lower():
                    break
                time.sleep(1)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            assert "Completed" in result.stdout
            assert os.readlink(out / "models" / "latest") == "v0001"

            deadline = time.time() + 120
            while len(completed := _completed_runs(api)) < 3:
                assert time.time() < deadline, f"{len(completed)} runs completed"
                time.sleep(1)
            assert sorted(p.name for p in (out / "models").glob("v*")) == ["v0001"]
            assert sum(run["auto_scheduled"] for run in completed) >= 2
            spans = sorted((run["start_time"], run["end_time"]) for run in completed)
            assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))  # one at a time
        finally:
            served.terminate()
            served.wait(timeout=30)


def _completed_runs(api: str) -> list[dict]:
    body = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()
