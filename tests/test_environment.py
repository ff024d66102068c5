"""One environment per clone: the slow dependency environment is shared, but each clone's .venv runs that clone's
code, and two clones can set up at the same time."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the project's git repository")


def test_two_clones_of_different_commits_each_run_their_own_code(tmp_path):
    clones = {name: tmp_path / name for name in ("a", "b")}
    for clone in clones.values():
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    init = clones["b"] / "sgan" / "__init__.py"
    init.write_text(init.read_text() + 'CLONE = "b"\n')
    subprocess.run(["git", "-C", str(clones["b"]), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam",
                    "b"], check=True)

    setups = {name: subprocess.Popen(["make", "-s", "env"], cwd=clone, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True) for name, clone in clones.items()}
    for name, setup in setups.items():  # at the same time: the shared cache is locked, each .venv is its own
        output, _ = setup.communicate(timeout=900)
        assert setup.returncode == 0, output[-3000:]

    for name, clone in clones.items():
        venv = clone / ".venv"
        assert venv.is_dir() and not venv.is_symlink()
        probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sgan, horovod; print(sgan.__file__); print(getattr(sgan, 'CLONE', '-'))"],
                               capture_output=True, text=True, cwd=tmp_path)
        assert probe.returncode == 0, probe.stderr
        path, marker = probe.stdout.split()
        assert Path(path).is_relative_to(clone) and marker == ("b" if name == "b" else "-")
        cli = subprocess.run([str(venv / "bin" / "sgan"), "--help"], capture_output=True, text=True, cwd=tmp_path)
        assert cli.returncode == 0 and "prepare" in cli.stdout
    ours = subprocess.run([sys.executable, "-c", "import sgan; print(sgan.__file__)"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert Path(ours.stdout.strip()).is_relative_to(ROOT)  # this checkout still runs its own code
