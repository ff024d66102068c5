"""Training across two nodes: two network namespaces with their own hostnames and sshd (tests/nodes.py), real
horovodrun over ssh, a worker killed mid-run, and the preflight's errors. The Prefect flow across nodes runs in
tests/test_k8s.py, as the Kubernetes MPIJob's launcher runs it."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nodes as simulated
import pytest
from conftest import SGAN, write_idx_dataset

from sgan.distributed.launch import GLOO_TIMEOUT_S

HOROVODRUN = Path(sys.executable).with_name("horovodrun")
pytestmark = [pytest.mark.skipif(not HOROVODRUN.exists(), reason="needs Horovod (scripts/make-env.sh)"),
              pytest.mark.skipif(bool(simulated.unavailable()), reason=str(simulated.unavailable()))]
HOSTS = "node1:1,node2:1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("nodes")
    with simulated.two_nodes(root) as nodes:
        yield nodes


@pytest.fixture
def prepared(tmp_path):
    run = tmp_path / "run"
    code = subprocess.run([SGAN, "prepare", "--data", write_idx_dataset(tmp_path / "data"),
                           "--labels", "20", "--run-dir", run], capture_output=True, text=True).returncode
    assert code == 0
    return run


def on_node1(cluster, *args, timeout=600):
    """Runs `sgan ARGS` on node1 (the launching node), as a user there would."""
    ssh = ["--ssh-port", simulated.SSH_PORT, "--ssh-identity-file", cluster.key]
    process = cluster.run_on("node1", [SGAN, *args, *ssh], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**cluster.env(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_two_ranks_on_two_nodes_hold_identical_weights(cluster, tmp_path):
    data = write_idx_dataset(tmp_path / "data")
    command = [HOROVODRUN, "-np", 2, "-H", HOSTS, "--gloo", "--ssh-port", simulated.SSH_PORT, "--ssh-identity-file",
               cluster.key, sys.executable, Path(__file__).with_name("hvd_checks.py"), data, tmp_path / "run",
               tmp_path / "result.json"]
    process = cluster.run_on("node1", command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**cluster.env(), "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=tmp_path)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["hostnames"] == ["node1", "node2"]
    assert result["weights_max_abs_diff"] == 0.0 and result["two_vs_one_worker_max_abs_diff"] < 1e-5


def test_a_killed_worker_stops_the_job_everywhere_and_a_rerun_resumes(cluster, prepared):
    """`sgan train --hosts` across both nodes; rank 1 killed mid-run; the rerun resumes, rank 0 alone writing."""
    ssh = ["--ssh-port", str(simulated.SSH_PORT), "--ssh-identity-file", str(cluster.key)]
    launcher = cluster.run_on("node1", [SGAN, "train", "--run-dir", prepared, "--hosts",
                                        HOSTS, "--iterations", 3000, "--batch-size", 8, "--checkpoint-every", 20, *ssh],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**cluster.env(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 300
        while not (prepared / "checkpoints" / "ckpt-40.index").exists():
            assert time.time() < deadline and launcher.poll() is None, "no checkpoint appeared"
            time.sleep(0.2)
        rank1 = cluster.processes_matching(f"sgan.distributed.worker --run-dir {prepared}")["node2"]
        assert len(rank1) == 1
        killed_at = time.time()
        subprocess.run(["kill", "-9", str(rank1[0])], check=True)
        out, err = launcher.communicate(timeout=120)
        stopped_in = time.time() - killed_at
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2, out[-2000:] + err[-2000:]
    message = err.strip().splitlines()[-1]
    resumed_from = int(re.search(r"resume from iteration (\d+)", message).group(1))
    assert message.startswith("sgan: error: training failed: worker 1 on node2 exited with code"), message
    assert resumed_from >= 40 and stopped_in < 60
    assert cluster.processes_matching(f"sgan.distributed.worker --run-dir {prepared}") == {"node1": [], "node2": []}

    code, out, err = on_node1(cluster, "train", "--run-dir", prepared, "--hosts", HOSTS, "--iterations",
                              resumed_from + 4, "--batch-size", 8, "--checkpoint-every", 20)
    assert code == 0, out[-3000:] + err[-3000:]
    assert f"2 worker(s) x batch 8 = global batch 16, precision fp32, from iteration {resumed_from}" in out
    assert (prepared / "checkpoints" / f"ckpt-{resumed_from + 4}.index").exists()
    events = list((prepared / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(".node1." in e.name for e in events), events  # rank 1, on node2, wrote nothing
    assert not any(cluster.processes_matching("sgan.distributed.worker").values())


def test_a_node_that_vanishes_stops_the_job_within_the_gloo_timeout_and_a_rerun_resumes(cluster, prepared,
                                                                                         record_property):
    """node2 taken off the network mid-run: the workers give up after Gloo's timeout, the launcher prints its one
    line, and once node2 is back the same command resumes (stopping node2's stranded worker first)."""
    ssh = ["--ssh-port", str(simulated.SSH_PORT), "--ssh-identity-file", str(cluster.key)]
    train = ["train", "--run-dir", prepared, "--hosts", HOSTS, "--batch-size", 8, "--checkpoint-every", 20, *ssh]
    launcher = cluster.run_on("node1", [SGAN, *train, "--iterations", 3000], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**cluster.env(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 300
        while not (prepared / "checkpoints" / "ckpt-40.index").exists():
            assert time.time() < deadline and launcher.poll() is None, "no checkpoint appeared"
            time.sleep(0.2)
        cluster.link("node2", "down")
        cut_at = time.time()
        out, err = launcher.communicate(timeout=GLOO_TIMEOUT_S + 90)
        stopped_in = time.time() - cut_at
        record_property("stopped_in_s", round(stopped_in, 1))  # for benchmarks/vanished_node.py
    finally:
        cluster.link("node2", "up")
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2, out[-2000:] + err[-2000:]
    message = err.strip().splitlines()[-1]
    assert re.match(r"sgan: error: training failed: worker \d on node\d exited with code", message), message
    assert stopped_in < GLOO_TIMEOUT_S + 60, stopped_in
    assert cluster.processes_matching(f"sgan.distributed.worker --run-dir {prepared}")["node1"] == []
    resumed_from = int(re.search(r"resume from iteration (\d+)", message).group(1))
    assert resumed_from >= 40

    code, out, err = on_node1(cluster, *train[:-len(ssh)], "--iterations", resumed_from + 4)
    assert code == 0, out[-3000:] + err[-3000:]
    assert f"from iteration {resumed_from}" in out
    assert not any(cluster.processes_matching(f"sgan.distributed.worker --run-dir {prepared}").values())


@pytest.mark.parametrize("hosts, extra, fragment", [
    ("node1:1,node3:1", [], "node3: not reachable over ssh"),
    ("node1 slots=1\nnode3 slots=1\n", [], "node3: not reachable over ssh"),  # a hostfile
    ("node1:1,{node1_address}:1", [], "both have the hostname 'node1'"),
    (HOSTS, ["--workers", "3"], "--workers 3 disagrees with the 2 slots of the hosts"),
    ("node1 slots=1\nnode2 slots=1\n", ["--workers", "3"], "--workers 3 disagrees with the 2 slots of the hosts"),
])
def test_preflight_refuses_in_one_line(cluster, prepared, tmp_path, hosts, extra, fragment):
    hosts = hosts.format(node1_address=cluster.addresses["node1"])
    if "slots=" in hosts:
        (tmp_path / "hostfile").write_text(hosts)
        nodes = ["--hostfile", tmp_path / "hostfile"]
    else:
        nodes = ["--hosts", hosts]
    started = time.time()
    code, out, err = on_node1(cluster, "train", "--run-dir", prepared, *nodes, *extra, timeout=120)
    assert code == 2 and time.time() - started < 60, err
    errors = [line for line in err.splitlines() if line.strip()]
    assert errors[-1].startswith("sgan: error: ") and fragment in errors[-1], err
    assert "Traceback" not in err and not (prepared / "checkpoints").exists()


@pytest.mark.parametrize("node, edit, fragment", [
    ("node1", lambda hosts, a: hosts.replace(f"{a['node1']} node1", "127.0.1.1 node1"),
     "{node1}: its hostname 'node1' resolves there to 127.0.1.1, a loopback address"),
    ("node2", lambda hosts, a: hosts.replace(f"{a['node2']} node2\n", ""),
     "{node2}: its hostname 'node2' does not resolve there"),
])
def test_preflight_refuses_a_node_whose_own_hostname_gloo_cannot_bind_to(cluster, prepared, node, edit, fragment):
    """Gloo binds each worker to the address its node's own hostname resolves to there (how other nodes resolve
    it does not matter: on Kubernetes they cannot); nodes are named by address, so that ssh still reaches them."""
    hosts_file = Path("/etc/netns") / cluster.namespaces[node] / "hosts"
    original = hosts_file.read_text()
    with open(hosts_file, "w") as f:  # in place: the file is bind-mounted into the node's running sshd
        f.write(edit(original, cluster.addresses))
    hosts = ",".join(f"{cluster.addresses[n]}:1" for n in cluster.names)
    try:
        code, out, err = on_node1(cluster, "train", "--run-dir", prepared, "--hosts", hosts, timeout=120)
    finally:
        with open(hosts_file, "w") as f:
            f.write(original)
    assert code == 2, err
    fragment = fragment.format(**cluster.addresses)
    assert err.splitlines()[-1].startswith("sgan: error: ") and fragment in err.splitlines()[-1], err
