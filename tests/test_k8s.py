"""The Kubernetes MPIJob cannot run here: check that its worker count and command fit the project."""

from pathlib import Path

import yaml

from sgan.config import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]


def test_mpijob_launches_one_worker_per_gpu_slot_with_the_training_module():
    job = yaml.safe_load((ROOT / "k8s" / "mpijob.yaml").read_text())
    assert job["kind"] == "MPIJob"
    specs = job["spec"]["mpiReplicaSpecs"]
    command = specs["Launcher"]["template"]["spec"]["containers"][0]["command"]
    workers = specs["Worker"]["replicas"] * job["spec"]["slotsPerWorker"]
    assert command[command.index("-np") + 1] == str(workers)
    assert command[command.index("-m") + 1] == "sgan.distributed.worker"
    assert (ROOT / "sgan" / "distributed" / "worker.py").exists()
    worker = specs["Worker"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == job["spec"]["slotsPerWorker"]
    assert command[command.index("--precision") + 1] in PRECISIONS
