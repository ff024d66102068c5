"""The GPU Dockerfile cannot be built here (no Docker engine): lint it, and keep its pins equal to pyproject.toml."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile_args() -> dict:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", (ROOT / "Dockerfile").read_text(), flags=re.M))


def _pins() -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra
                                              if not r.startswith("sgan[")]  # an extra that includes another
    return {name.lower(): version for name, version in (r.split("==") for r in requirements)}


def test_dockerfile_pins_match_pyproject():
    args, pins = _dockerfile_args(), _pins()
    assert args["TF_VERSION"] == pins["tensorflow-cpu"] == pins["tensorflow[and-cuda]"]
    assert args["HOROVOD_VERSION"] == pins["horovod"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert SpecifierSet(project["requires-python"]).contains(args["PYTHON_VERSION"])  # the image's Python installs it


def test_dockerfile_pins_match_the_environment_script():
    script = (ROOT / "scripts" / "make-env.sh").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    bootstrap = re.search(r"pip==\S+ setuptools==\S+ wheel==\S+", script).group(0)
    assert bootstrap in dockerfile
    assert f"horovod=={_dockerfile_args()['HOROVOD_VERSION']}" in script


def test_lock_pins_the_top_level_requirements():
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
                if line and not line.startswith("#"))
    lock = {name.lower().replace("_", "-"): version for name, version in lock.items()}
    for name, version in _pins().items():
        if name not in ("horovod", "tensorflow[and-cuda]"):
            assert lock[name] == version, name


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_copies_every_package_it_installs():
    """`pip install .` in the image builds the packages pyproject.toml names: each must be copied in before."""
    included = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), flags=re.M))
    assert {pattern.rstrip("*") for pattern in included} == copied
