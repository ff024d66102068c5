"""Starting Horovod workers: `horovodrun` on this host or across nodes, a preflight that finds what would break a
multi-node job before it starts, and a failed job turned into one line (which worker, where to resume) with no
worker left running on any node.
"""

import ctypes
import ipaddress
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sgan.errors import ERROR_PREFIX, UserError
from sgan.training.resume import latest_checkpoint

PR_SET_PDEATHSIG = 1  # prctl(2)
# A worker waiting on a peer that vanished (a node off the network) gives up after this long, and the job stops.
GLOO_TIMEOUT_S = 30
# After horovodrun reports a failed worker it stops the others and exits; if it has not within this long, it is ended.
STOP_GRACE_S = 20
FAILED = re.compile(r"Process (\d+) exit with status code (-?\d+)")  # what horovodrun prints for a failed worker
# A worker's one line for a user error (a GPU count below its node's workers), as horovodrun passes it on.
WORKER_ERROR = re.compile(r"<stderr>:" + re.escape(ERROR_PREFIX) + r"(.+)")


@dataclass(frozen=True)
class Host:
    name: str  # as given to -H: a hostname or an address
    slots: int


@dataclass(frozen=True)
class Ssh:
    port: int | None = None
    identity_file: str | None = None

    def command(self, host: str, remote: str, timeout: int = 10) -> list[str]:
        options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", f"ConnectTimeout={timeout}"]
        options += ["-p", str(self.port)] if self.port else []
        options += ["-i", self.identity_file] if self.identity_file else []
        return ["ssh", *options, host, remote]


def parse_hosts(text: str) -> list[Host]:
    """`node1:4,node2:4` -> hosts with slots (horovodrun's -H syntax; a missing slot count is 1)."""
    hosts = []
    for item in text.split(","):
        name, _, slots = item.strip().partition(":")
        if not name or (slots and (not slots.isdigit() or int(slots) < 1)):
            raise UserError(f"--hosts: {item!r} is not HOST or HOST:SLOTS")
        hosts.append(Host(name, int(slots or 1)))
    return _distinct(hosts, f"--hosts {text!r}")


def read_hostfile(path: Path) -> list[Host]:
    """A hostfile in Open MPI's format, `HOST slots=N` a line, as the Kubeflow MPI Operator writes it to
    /etc/mpi/hostfile (horovodrun reads the same format); `#` starts a comment."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--hostfile {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    hosts = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.partition("#")[0].split()
        if not fields:
            continue
        name, *rest = fields
        if not rest:
            raise UserError(f"--hostfile {path}, line {number}: {name!r} names no slots (`HOST slots=N`)")
        slots = rest[0].removeprefix("slots=") if len(rest) == 1 and rest[0].startswith("slots=") else ""
        if not slots.isdigit() or int(slots) < 1:
            raise UserError(f"--hostfile {path}, line {number}: {line.strip()!r} is not `HOST slots=N` with N >= 1")
        hosts.append(Host(name, int(slots)))
    if not hosts:
        raise UserError(f"--hostfile {path} names no hosts")
    return _distinct(hosts, f"--hostfile {path}")


def _distinct(hosts: list[Host], source: str) -> list[Host]:
    if len({h.name for h in hosts}) < len(hosts):
        raise UserError(f"{source} names a host twice")
    return hosts


def worker_count(workers: int | None, hosts: list[Host] | None) -> int:
    """One source of truth: the slots of the hosts; --workers, when also given, must agree with them."""
    if not hosts:
        return workers or 1
    slots = sum(h.slots for h in hosts)
    if workers not in (None, slots):
        raise UserError(f"--workers {workers} disagrees with the {slots} slots of the hosts; give one of them")
    return slots


def preflight(hosts: list[Host], ssh: Ssh, paths: dict):
    """Checks on every node, over ssh, what breaks a multi-node job later, and raises one line for the first
    problem: ssh reachable; each node's hostname distinct and resolving, on that node, to a non-loopback address
    (Gloo binds to it and peers connect to it) that every node reaches; `paths` ({what: absolute path}) present
    on every node. Other nodes need not resolve a node's hostname: on Kubernetes only the hostfile's names do."""
    names = [h.name for h in hosts]
    script = ("hostname; a=$(getent hosts \"$(hostname)\" | awk '{print $1; exit}'); echo \"address:${a:--}\"; "
              + "; ".join(f"test -e {shlex.quote(str(p))} && echo present:{what}" for what, p in paths.items()))
    with ThreadPoolExecutor(len(hosts)) as pool:
        answers = dict(zip(names, pool.map(lambda h: _ssh(ssh, h, script), names)))
    hostnames, addresses = {}, {}
    for name, lines in answers.items():
        hostname = lines[0].strip()
        if hostname in hostnames.values():
            other = next(n for n, h in hostnames.items() if h == hostname)
            raise UserError(f"{other} and {name} both have the hostname {hostname!r}: Gloo would connect each to "
                            "itself; give every node its own hostname")
        hostnames[name] = hostname
        address = next((line.removeprefix("address:") for line in lines if line.startswith("address:")), "-")
        if address == "-":
            raise UserError(f"{name}: its hostname {hostname!r} does not resolve there (Gloo binds to the address "
                            "of the node's own hostname: add it to that node's /etc/hosts or DNS)")
        if ipaddress.ip_address(address).is_loopback:
            raise UserError(f"{name}: its hostname {hostname!r} resolves there to {address}, a loopback address; "
                            "Gloo needs the node's reachable address (fix /etc/hosts, e.g. Debian's 127.0.1.1 line)")
        addresses[name] = address
        for what, path in paths.items():
            if f"present:{what}" not in lines:
                raise UserError(f"{name}: {what} {path} is missing; every node needs the same paths (a shared "
                                "filesystem, or the same install and data at the same place)")
    port = ssh.port or 22
    probe = "; ".join(f"timeout 5 bash -c '</dev/tcp/{a}/{port}' 2>/dev/null && echo reached:{a}"
                      for a in addresses.values())
    with ThreadPoolExecutor(len(hosts)) as pool:
        reached = dict(zip(names, pool.map(lambda h: _ssh(ssh, h, probe), names)))
    for name in names:
        for other, address in addresses.items():
            if f"reached:{address}" not in reached[name]:
                raise UserError(f"{name}: cannot reach {hostnames[other]} at {address} (port {port})")


def _ssh(ssh: Ssh, host: str, remote: str) -> list[str]:
    try:
        result = subprocess.run(ssh.command(host, remote), capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise UserError(f"{host}: ssh did not answer within 30 s") from None
    if result.returncode == 255:
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise UserError(f"{host}: not reachable over ssh ({reason})")
    return result.stdout.splitlines()


def horovodrun() -> Path | None:
    """Horovod's launcher beside this interpreter, if Horovod is installed (it is an optional extra)."""
    path = Path(sys.executable).with_name("horovodrun")
    return path if path.exists() else None


def horovodrun_command(workers: int, hosts: list[Host] | None, ssh: Ssh, network_interface: str | None,
                       worker_command: list[str]) -> list[str]:
    launcher = horovodrun()
    if not launcher:
        raise UserError("several workers or hosts need Horovod: `make env` (scripts/make-env.sh) builds an environment "
                        "with it, or install it into this one (pip install horovod==0.28.1, with a C++ compiler)")
    command = [str(launcher), "-np", str(workers), "--gloo", "--gloo-timeout-seconds", str(GLOO_TIMEOUT_S)]
    if hosts:
        command += ["-H", ",".join(f"{h.name}:{h.slots}" for h in hosts)]
        command += ["--ssh-port", str(ssh.port)] if ssh.port else []
        command += ["--ssh-identity-file", ssh.identity_file] if ssh.identity_file else []
    command += ["--network-interface", network_interface] if network_interface else []
    return command + worker_command


WORKER_MODULE = "sgan.distributed.worker"


def worker_command(run_dir: Path, options: list[str]) -> list[str]:
    """What horovodrun starts on every slot: this interpreter running the worker module on the run folder."""
    return [sys.executable, "-m", WORKER_MODULE, "--run-dir", str(run_dir), *options]


def worker_pattern(run_dir: Path) -> str:
    """An extended regex matching exactly this run's worker command lines (and the shells and ssh clients that
    carry them), never the launcher's own (`sgan train --run-dir R`) nor a run folder that merely starts with R."""
    return f"-m {_ere_escape(WORKER_MODULE)} --run-dir {_ere_escape(str(run_dir))}( |$)"


def _ere_escape(text: str) -> str:
    """`text` as a literal in a POSIX extended regex (pkill's)."""
    return re.sub(r"([.^$*+?()[\]{}|\\])", r"\\\1", text)


def die_with_parent():
    """For a child process (preexec_fn): killed when the process that started it dies, even by SIGKILL, so a killed
    flow or launcher leaves no training behind (Linux; elsewhere nothing is done)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def run(command: list[str], hosts: list[Host] | None, ssh: Ssh, run_dir: Path) -> int:
    """Runs horovodrun, passing its output through; on failure makes sure no worker of this run survives on any
    node, and raises one line naming the failed worker and the iteration a rerun resumes from. Workers of this
    run folder left by a killed launcher are stopped first: two trainings must never share a folder."""
    _stop_workers(hosts, ssh, run_dir)
    # Unbuffered: horovodrun prints a worker's failure to its stdout, a pipe here. Buffered, the line would wait
    # for horovodrun's next write or its exit, and the stop bound below, which counts from that line, with it.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    failed = []  # (rank, exit code, when) of the first failed worker horovodrun reports
    refused = []  # the first user error a worker printed

    def pass_through(source, sink, pattern, found, parse):
        recent = ""
        while chunk := source.read1(65536):
            if not refused:  # after a worker's one line, horovodrun's traceback and the other workers' copies
                sink.buffer.write(chunk)  # byte for byte: the workers' progress bars stay as they are
                sink.buffer.flush()
            recent = (recent + chunk.decode(errors="replace"))[-4096:]
            if not found and (match := pattern.search(recent)):
                found.append(parse(match))

    pumps = [threading.Thread(target=pass_through, daemon=True, args=args) for args in (
        (process.stdout, sys.stdout, FAILED, failed, lambda m: (int(m.group(1)), int(m.group(2)), time.monotonic())),
        (process.stderr, sys.stderr, WORKER_ERROR, refused, lambda m: m.group(1).strip()))]
    for pump in pumps:
        pump.start()
    while process.poll() is None:
        if failed and time.monotonic() - failed[0][2] > STOP_GRACE_S:
            # horovodrun can wait minutes on its ssh client to a node that left the network: end both
            subprocess.run(["pkill", "-9", "-P", str(process.pid)], capture_output=True)
            process.kill()
        time.sleep(0.2)
    for pump in pumps:
        pump.join(timeout=5)  # an ssh client that outlived horovodrun may hold its output open
    if process.returncode == 0:
        return 0
    _stop_workers(hosts, ssh, run_dir)
    if refused:
        raise UserError(refused[0])
    where = ""
    if failed:
        rank, code, _ = failed[0]
        where = f"worker {rank} on {_host_of(rank, hosts) if hosts else socket.gethostname()} exited with code {code}; "
    resume = latest_checkpoint(run_dir)
    raise UserError(f"training failed: {where}every worker was stopped; run the same command again to resume from "
                    f"iteration {resume}" + ("" if resume else " (no checkpoint yet)"))


def _host_of(rank: int, hosts: list[Host]) -> str:
    """horovodrun fills hosts in the order given: ranks 0..slots-1 on the first, and so on."""
    for host in hosts:
        if rank < host.slots:
            return host.name
        rank -= host.slots
    return "?"


def _stop_workers(hosts: list[Host] | None, ssh: Ssh, run_dir: Path):
    """horovodrun ends its ssh clients, not always the remote workers: end this run's workers on every node."""
    pattern = worker_pattern(run_dir)
    for host in hosts or []:
        try:
            subprocess.run(ssh.command(host.name, f"pkill -9 -f -- {shlex.quote(pattern)}", timeout=5),
                           capture_output=True, timeout=15)
        except subprocess.TimeoutExpired:
            pass  # an unreachable node: its workers lost their peers and stop at Gloo's timeout
    subprocess.run(["pkill", "-9", "-f", "--", pattern], capture_output=True)
