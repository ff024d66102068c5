"""Two simulated nodes on one machine, for multi-node tests: Linux network namespaces joined by a bridge (in a
third namespace), each node with its own hostname (a UTS namespace), /etc/hosts naming both, and an sshd on port
2222 that accepts a key made for the test. Addresses exist only inside these namespaces; everything is torn down
on exit, even after a failure.
"""

import os
import secrets
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_PORT = 2222


def unavailable() -> str | None:
    """Why this machine cannot host the simulated nodes, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not Path(SSHD).exists():
        return "needs sshd (openssh-server; `make test` installs it where apt-get works)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return f"needs {tool}"
    probe = f"sgan-probe-{secrets.token_hex(3)}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "this machine does not allow network namespaces"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


class Nodes:
    """`names` become the nodes' hostnames; `hosts(nodes, node)` is that node's /etc/hosts (default: every node by
    name)."""

    def __init__(self, root: Path, names=("node1", "node2"), hosts=None):
        self.root = root
        self.tag = secrets.token_hex(2)
        self.subnet = f"10.213.{secrets.randbelow(200) + 20}"
        self.switch = f"sgan{self.tag}sw"
        self.names = list(names)
        self.namespaces = {name: f"sgan{self.tag}{i}" for i, name in enumerate(self.names)}
        self.addresses = {name: f"{self.subnet}.{i + 2}" for i, name in enumerate(self.names)}
        self.hosts = hosts or (lambda nodes, node: "127.0.0.1 localhost\n" + "".join(
            f"{a} {n}\n" for n, a in nodes.addresses.items()))
        self.key = root / "id_ed25519"
        self.ssh_port = SSH_PORT
        self.bin = root / "bin"  # an `ssh` that uses this test's known_hosts, never the user's
        self.sshd = {}

    def run_on(self, node: str, command: list, **kwargs) -> subprocess.Popen:
        """Starts `command` on `node`: in its network namespace, under its hostname."""
        script = f'hostname {node} && exec "$@"'
        return subprocess.Popen(["ip", "netns", "exec", self.namespaces[node], "unshare", "--uts", "sh", "-c",
                                 script, "sh", *map(str, command)], **kwargs)

    def env(self) -> dict:
        return {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    def processes_matching(self, pattern: str) -> dict:
        """{node: pids} of the processes inside each node's namespace whose command line contains `pattern`."""
        found = {}
        for node, namespace in self.namespaces.items():
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
            found[node] = [int(p) for p in pids if _cmdline(p) and pattern in _cmdline(p)]
        return found

    def link(self, node: str, state: str):
        """`down` takes the node off the network, as a failed switch port or a powered-off host would; `up`
        returns it."""
        self._sh("ip", "-n", self.switch, "link", "set", f"sg{self.tag}p{self.names.index(node)}", state)

    def _sh(self, *command):
        subprocess.run(command, check=True, capture_output=True)

    def up(self, sshd: bool = True):
        """The network; with `sshd`, a root sshd on every node accepting this test's key."""
        ns = self.namespaces
        for namespace in (self.switch, *ns.values()):
            self._sh("ip", "netns", "add", namespace)
            self._sh("ip", "-n", namespace, "link", "set", "lo", "up")
        self._sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        self._sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for i, node in enumerate(self.names):
            self._sh("ip", "link", "add", f"sg{self.tag}p{i}", "netns", self.switch, "type", "veth", "peer", "name",
                     "eth0", "netns", ns[node])
            self._sh("ip", "-n", self.switch, "link", "set", f"sg{self.tag}p{i}", "master", "br0", "up")
            self._sh("ip", "-n", ns[node], "addr", "add", f"{self.addresses[node]}/24", "dev", "eth0")
            self._sh("ip", "-n", ns[node], "link", "set", "eth0", "up")
            etc = Path("/etc/netns") / ns[node]  # `ip netns exec` mounts these over /etc/hosts and /etc/hostname
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(self.hosts(self, node))
        if sshd:
            self._start_sshd()

    def _start_sshd(self):
        self._ssh_keys()
        Path("/run/sshd").mkdir(exist_ok=True)
        for node in self.names:
            config = self.root / f"sshd-{node}.conf"
            config.write_text("\n".join([
                f"Port {SSH_PORT}", f"HostKey {self.root / 'host_key'}", f"PidFile {self.root / f'sshd-{node}.pid'}",
                f"AuthorizedKeysFile {self.root / 'authorized_keys'}", "PermitRootLogin prohibit-password",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", ""]))
            self.sshd[node] = self.run_on(node, [SSHD, "-D", "-e", "-f", config], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        for node in self.names:
            self._wait_for_ssh(node)

    def _ssh_keys(self):
        self._sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / "host_key"))
        self._sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key))
        shutil.copy(f"{self.key}.pub", self.root / "authorized_keys")
        self.bin.mkdir()
        wrapper = self.bin / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -o UserKnownHostsFile={self.root / "known_hosts"} '
                           f'-o LogLevel=ERROR "$@"\n')
        wrapper.chmod(0o755)

    def _wait_for_ssh(self, node: str, timeout: float = 20):
        deadline = time.time() + timeout
        while True:
            probe = self.run_on(self.names[0], [self.bin / "ssh", "-o", "StrictHostKeyChecking=no", "-o",
                                                "BatchMode=yes", "-i", self.key, "-p", SSH_PORT, node, "hostname"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = probe.communicate(timeout=timeout)
            if probe.returncode == 0 and out.strip() == node:
                return
            if time.time() > deadline:
                raise RuntimeError(f"sshd on {node} did not answer: {err.strip()}")
            time.sleep(0.3)

    def down(self):
        for namespace in self.namespaces.values():  # everything still running on a node, sshd included
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True)
        for process in self.sshd.values():
            process.wait(timeout=10)
        for namespace in (*self.namespaces.values(), self.switch):
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / namespace, ignore_errors=True)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@contextmanager
def two_nodes(root: Path):
    nodes = Nodes(root)
    try:
        nodes.up()
        yield nodes
    finally:
        nodes.down()
