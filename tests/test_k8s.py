"""The Kubernetes manifests in k8s/, as far as a machine without a cluster can prove them: each validates against
the schema its API server would use, and the commands they give their containers are run here as the cluster
would run them.

The MPIJob's pods become network namespaces named and resolved as the MPI Operator's pods are (tests/nodes.py): each
worker runs the worker container's command as the image's non-root user, with the job's ssh key mounted at
`sshAuthMountPath` as the operator mounts its Secret, the pod's volumes at their mount paths and the image's files
(k8s/image/) where the Dockerfile puts them; the launcher runs the launcher container's command with a hostfile in
the operator's format. The serving Deployment's command then serves what that job published, on a read-only root.
"""

import copy
import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import nodes as simulated
import pytest
import yaml
from conftest import flow_env, write_idx_dataset
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[1]
MPIJOB_CRD = ROOT.parent / "shared" / "k8s" / "mpijob-crd.yaml"
KSERVE_CRD = Path(__file__).with_name("schemas") / "kserve-inferenceservices-crd.yaml.gz"
KUBERNETES_VERSION = "1.33"
HOROVODRUN = Path(sys.executable).with_name("horovodrun")
USER = 1000  # the images' user (Dockerfile, deploy/Dockerfile); the manifests run every pod as it


def manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "k8s" / name).read_text()) if d]


def strict(schema):
    """A CRD's schema as the API server applies it with strict field validation: unknown fields are errors."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def crd_errors(crd_text: str, document: dict) -> list[str]:
    crd = yaml.load(crd_text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 2 MB: the C parser
    assert document["apiVersion"] == f"{crd['spec']['group']}/{document['apiVersion'].split('/')[1]}"
    version = next(v for v in crd["spec"]["versions"] if document["apiVersion"].endswith("/" + v["name"]))
    validator = Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.skipif(not MPIJOB_CRD.exists(), reason=f"needs the MPI Operator's CRD at {MPIJOB_CRD}")
def test_the_mpijob_validates_against_the_operators_crd_and_a_typo_does_not():
    job, = manifests("mpijob.yaml")
    assert crd_errors(MPIJOB_CRD.read_text(), job) == []
    broken = copy.deepcopy(job)
    broken["spec"]["sshAuthMountpath"] = broken["spec"].pop("sshAuthMountPath")
    assert any("sshAuthMountpath" in e for e in crd_errors(MPIJOB_CRD.read_text(), broken))


def test_the_inferenceservice_validates_against_kserves_crd_and_a_typo_does_not():
    service, = manifests("inferenceservice.yaml")
    crd = gzip.decompress(KSERVE_CRD.read_bytes()).decode()
    assert crd_errors(crd, service) == []
    broken = copy.deepcopy(service)
    broken["spec"]["predictor"]["containers"][0]["argz"] = broken["spec"]["predictor"]["containers"][0].pop("args")
    assert any("argz" in e for e in crd_errors(crd, broken))


def test_the_serving_manifests_validate_against_kubernetes_schemas():
    documents = manifests("serving.yaml")
    assert {d["kind"] for d in documents} == {"Deployment", "Service", "HorizontalPodAutoscaler",
                                              "PodDisruptionBudget"}
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on any error
    broken = copy.deepcopy(documents[0])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_deployment_runs_the_slim_image_non_root_on_a_read_only_root_with_its_probes():
    deployment = next(d for d in manifests("serving.yaml") if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container, = pod["containers"]
    assert pod["securityContext"]["runAsUser"] == USER and pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"} and "memory" in container["resources"]["limits"]
    slim = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sgan", "serve"]' in slim and container["command"] == ["sgan", "serve"]
    hpa = next(d for d in manifests("serving.yaml") if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


# --- the MPIJob's commands, run as its pods would run them -----------------------------------------------------

class Pods:
    """The MPIJob's pods: a namespace each, named `<job>-launcher` and `<job>-worker-<i>`, each resolving its own
    name (kubelet's /etc/hosts line) and the job's Service names (`<pod>.<job>.<namespace>.svc`, the cluster DNS),
    but not the other pods' short names."""

    def __init__(self, root: Path, job: dict):
        self.root = root
        self.name = job["metadata"]["name"]
        workers = job["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"]
        self.workers = [f"{self.name}-worker-{i}" for i in range(workers)]
        self.launcher = f"{self.name}-launcher"
        self.nodes = simulated.Nodes(root, [self.launcher, *self.workers], hosts=self._hosts)
        self.stage = root / "stage"  # root's own: the sources of what each pod mounts
        self.created = []  # mount points this test made on the machine (the image has them), removed after

    def service_name(self, pod: str) -> str:
        return f"{pod}.{self.name}.default.svc"

    def _hosts(self, nodes, node) -> str:
        own = f"{nodes.addresses[node]} {self.service_name(node)}.cluster.local {node}\n"
        return "127.0.0.1 localhost\n" + own + "".join(f"{a} {self.service_name(n)}\n"
                                                      for n, a in nodes.addresses.items())

    def run(self, pod: str, container: dict, template: dict, mounts: dict, cwd="/",
            extra_args=(), read_only_root=False, **popen) -> subprocess.Popen:
        """Starts `container`'s command and args (+ `extra_args`) in `pod` as the pod's user, with `mounts`
        ({mount path: source}) and the image's home; the volumes the container mounts must all be in `mounts`."""
        user = template["spec"]["securityContext"]["runAsUser"]
        declared = {m["mountPath"] for m in container.get("volumeMounts", []) if m["mountPath"] != "/dev/shm"}
        assert declared <= set(mounts), f"{pod}: the test mounts no source for {declared - set(mounts)}"
        read_only = {m["mountPath"] for m in container.get("volumeMounts", []) if m.get("readOnly")}
        script = ["set -e", "mount --make-rprivate /", *self._interpreter_readable(),
                  f"mount --bind {self.stage}/passwd /etc/passwd", f"mount --bind {self.stage}/group /etc/group",
                  "mount -t tmpfs -o mode=0755 tmpfs /home", "mkdir -p /home/sgan",
                  f"cp {ROOT}/k8s/image/sshd_config /home/sgan/.sshd_config",  # Dockerfile: COPY --chown=sgan
                  "mount -t tmpfs -o mode=0755 tmpfs /etc/ssh/ssh_config.d",
                  f"cp {ROOT}/k8s/image/ssh_config /etc/ssh/ssh_config.d/sgan.conf",
                  f"chown -R {user}:{user} /home/sgan"]
        for path, source in mounts.items():
            script.append(f"mkdir -p {path} && mount --bind {source} {path}")
            if path in read_only:
                script.append(f"mount -o remount,bind,ro {path}")
        if read_only_root:
            script.append("mount -o remount,bind,ro /")
        variables = {"HOME": "/home/sgan", "USER": "sgan", "LOGNAME": "sgan", "TF_CPP_MIN_LOG_LEVEL": "3",
                     "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                     **{e["name"]: e["value"] for e in container.get("env", [])}}
        script.append(f'cd {cwd} && exec setpriv --reuid {user} --regid {user} --clear-groups env -i '
                      + " ".join(f"{k}={v}" for k, v in variables.items()) + ' "$@"')
        command = [*container.get("command", []), *container.get("args", []), *extra_args]
        return self.nodes.run_on(pod, ["sh", "-c", "\n".join(script), "pod", *command], **popen)

    def _interpreter_readable(self) -> list[str]:
        """Shell lines that let the pod's user reach this interpreter and its packages (in the image: /opt/sgan)
        where they live in a home only root may enter: that home becomes a tmpfs holding just those folders."""
        home = Path.home()
        if home.stat().st_mode & 0o001:
            return []
        used = [Path(p).resolve() for p in [*sys.path, sys.base_prefix, sys.executable] if p]
        tops = sorted({home / p.relative_to(home).parts[0] for p in used if p.is_relative_to(home) and p != home})
        lines = [f"mkdir -p {self.stage}/home && mount --bind {home} {self.stage}/home",
                 f"mount -t tmpfs -o mode=0755 tmpfs {home}"]
        return lines + [f"mkdir -p {t} && mount --bind {self.stage}/home/{t.name} {t}" for t in tops]

    def up(self):
        self.nodes.up(sshd=False)
        self.stage.mkdir(mode=0o700)
        for name, entry in (("passwd", f"sgan:x:{USER}:{USER}::/home/sgan:/bin/bash"), ("group", f"sgan:x:{USER}:")):
            lines = [line for line in Path("/etc", name).read_text().splitlines() if line.split(":")[2] != str(USER)]
            (self.stage / name).write_text("\n".join([*lines, entry, ""]))  # the image's user in place of uid 1000
        secret = self.root / "ssh-secret"  # what the operator's Secret holds, as a secret volume shows it
        secret.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-N", "", "-f", secret / "id_rsa"],
                       check=True)
        shutil.copy(secret / "id_rsa.pub", secret / "authorized_keys")
        for file in secret.iterdir():
            file.chmod(0o644)  # the volume's default mode; owned by root, not by the pod's user

    def mount_points(self, paths):
        for path in map(Path, paths):
            if not path.exists() and not str(path).startswith("/home/"):
                path.mkdir(parents=True)
                self.created.append(path)

    def down(self):
        self.nodes.down()
        for path in reversed(self.created):
            try:
                path.rmdir()
            except OSError:
                pass

    def wait_for_port(self, pod: str, port: int, timeout: float = 30):
        """The worker's readinessProbe (tcpSocket), probed from the launcher."""
        address = self.nodes.addresses[pod]
        deadline = time.time() + timeout
        while time.time() < deadline:
            probe = self.nodes.run_on(self.launcher, ["bash", "-c", f"</dev/tcp/{address}/{port}"],
                                      stderr=subprocess.DEVNULL)
            if probe.wait(timeout=10) == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"{pod} never became ready: nothing answers on port {port} (its container's command "
                             "must start sshd there)")


@pytest.fixture(scope="module")
def mpijob(tmp_path_factory):
    """k8s/mpijob.yaml run on simulated pods: workers' sshd from the manifest, the launcher's `sgan pipeline
    --hostfile ...` from the manifest, a few iterations, published to the runs volume."""
    if not HOROVODRUN.exists() or simulated.unavailable():
        pytest.skip(simulated.unavailable() or "needs Horovod")
    tmp = tmp_path_factory.mktemp("mpijob")
    job, = manifests("mpijob.yaml")
    specs = job["spec"]["mpiReplicaSpecs"]
    pods = Pods(tmp, job)
    data, runs = write_idx_dataset(tmp / "data"), tmp / "runs"
    runs.mkdir()
    os.chown(runs, USER, USER)
    secret = tmp / "ssh-secret"
    config = tmp / "mpi"  # the operator's ConfigMap: the hostfile, `slots=1` here (CPUs; the manifest has GPUs)
    config.mkdir()
    (config / "hostfile").write_text("".join(f"{pods.service_name(w)} slots=1\n" for w in pods.workers))
    prefect = flow_env(tmp / "prefect-home")["PREFECT_HOME"]  # a migrated database: what a first run would make
    subprocess.run(["chown", "-R", f"{USER}:{USER}", prefect], check=True)
    volumes = {"/data": data, "/runs": runs, job["spec"]["sshAuthMountPath"]: secret}
    pods.mount_points([*volumes, "/etc/mpi"])
    try:
        pods.up()
        worker_spec = specs["Worker"]["template"]
        for worker in pods.workers:
            pods.run(worker, worker_spec["spec"]["containers"][0], worker_spec, volumes,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = worker_spec["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"]
        for worker in pods.workers:
            pods.wait_for_port(worker, port)
        launcher_spec = specs["Launcher"]["template"]
        launcher = pods.run(pods.launcher, launcher_spec["spec"]["containers"][0], launcher_spec,
                            {**volumes, "/etc/mpi": config, "/home/sgan/.prefect": prefect}, cwd="/runs",
                            extra_args=["--iterations", "6", "--batch-size", "8", "--accuracy-gate", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output, _ = launcher.communicate(timeout=900)
        yield pods, launcher.returncode, output, runs
    finally:
        pods.down()


def test_the_mpijob_trains_across_its_worker_pods_as_the_manifest_says(mpijob):
    pods, code, output, runs = mpijob
    assert code == 0, output[-5000:]
    assert "2 worker(s) x batch 8 = global batch 16" in output
    assert f"--hosts {pods.service_name(pods.workers[0])}:1,{pods.service_name(pods.workers[1])}:1" in output
    events = list(runs.glob("pipeline/runs/*/tensorboard/events.out.tfevents.*"))
    assert events and all(f".{pods.workers[0]}." in e.name for e in events), events  # rank 0 ran on worker 0
    assert (runs / "pipeline" / "models" / "latest" / "model.onnx").exists()
    owners = {p.stat().st_uid for p in runs.rglob("*")}
    assert owners == {USER}, owners  # every file written as the image's user, none as root


def test_the_deployment_serves_what_the_job_published_with_its_probes_answering(mpijob):
    """The Deployment's container command on the runs volume's models folder, mounted read-only at its mount
    path, on a read-only root with the emptyDir at /tmp; its probes' paths on its port answer 200."""
    pods, code, _, runs = mpijob
    assert code == 0
    deployment = next(d for d in manifests("serving.yaml") if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    models = next(m for m in container["volumeMounts"] if m["name"] == "models")
    tmp = runs.parent / "serve-tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)  # an emptyDir is writable by any user
    pods.mount_points([models["mountPath"]])
    answers = {}
    server = pods.run(pods.launcher, container, template,
                      {models["mountPath"]: runs / models["subPath"], "/tmp": tmp}, cwd=ROOT, read_only_root=True,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        probes = [container[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        scrape = template["metadata"]["annotations"]
        probes.append({"path": scrape["prometheus.io/path"], "port": int(scrape["prometheus.io/port"])})
        for probe in probes:
            port = ports.get(probe["port"], probe["port"])
            answers[probe["path"]] = _get_in(pods, pods.launcher, f"http://127.0.0.1:{port}{probe['path']}")
    finally:
        server.terminate()  # as the kubelet stops a container: uvicorn ends its worker processes
        try:
            output = server.communicate(timeout=30)[0]
        finally:
            for pids in pods.nodes.processes_matching("deploy.serve").values():
                for pid in pids:
                    os.kill(pid, 9)
    assert answers == {"/healthz": "200", "/readyz": "200", "/metrics": "200"}, (answers, output[-3000:])
    assert "sgan serve: v0001" in output, output[-3000:]


def _get_in(pods, pod, url, timeout=60) -> str:
    """The status of GET `url` from inside `pod`, retried until the server is up."""
    code = ("import sys, time, urllib.request, urllib.error\n"
            "for _ in range(int(sys.argv[2]) * 4):\n"
            "    try:\n"
            "        print(urllib.request.urlopen(sys.argv[1], timeout=2).status); break\n"
            "    except urllib.error.HTTPError as e:\n"
            "        print(e.code); break\n"
            "    except OSError:\n"
            "        time.sleep(0.25)\n"
            "else:\n"
            "    print('no answer')\n")
    probe = pods.nodes.run_on(pod, [sys.executable, "-c", code, url, timeout], stdout=subprocess.PIPE, text=True)
    return probe.communicate(timeout=timeout + 30)[0].strip()
