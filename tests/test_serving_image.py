"""The slim serving image (deploy/Dockerfile) cannot be built here (no Docker engine): lint it, keep what it installs
(the `serve` extra) pinned as the lock file, and check that the `sgan serve` it runs imports no TensorFlow."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Imported only when present (inside try/except ImportError), so not required: pydantic's extra types, and sniffio,
# which the HTTP stack asks for to detect an async library.
OPTIONAL = {"pydantic-extra-types", "sniffio"}
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def test_the_serve_extra_is_pinned_as_the_lock_and_holds_no_tensorflow():
    """What `pip install '.[serve]'` asks for (the slim image installs it under the lock's pins)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = {name.lower().replace("_", "-"): version for name, version in
            (line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
             if line and not line.startswith("#"))}
    serving = dict(r.split("==") for r in project["dependencies"] + project["optional-dependencies"]["serve"])
    assert {"onnxruntime", "numpy", "pillow", "fastapi", "uvicorn", "prometheus-client", "orjson", "pydantic"} \
        <= set(serving)
    for name, version in serving.items():
        assert lock.get(name) == version, name
    assert not [name for name in serving if name.startswith(("tensorflow", "keras", "tf2onnx", "horovod", "prefect"))]
    assert "--constraint requirements.lock \".[serve]\"" in DOCKERFILE.read_text()


def test_serving_image_is_non_root_with_a_healthcheck_and_lints_clean():
    text = DOCKERFILE.read_text()
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*readyz", text, flags=re.M)
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_files_the_image_copies_are_all_the_server_imports(tmp_path):
    """Lay out /app as the COPY lines do, and import the server from there alone."""
    for sources, target in re.findall(r"^COPY (.+) (\S+)$", DOCKERFILE.read_text(), flags=re.M):
        for source in sources.split():
            destination = tmp_path / target.removeprefix("./") / (Path(source).name if target.endswith("/") else "")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, destination)
    check = ("import sys, cli.main, deploy.serve, deploy.server, sgan; "
             "assert sgan.__file__.startswith(sys.argv[1]), sgan.__file__; "
             "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'prefect')]")
    result = subprocess.run([sys.executable, "-c", check, str(tmp_path)], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


def test_what_serving_and_predicting_import_comes_with_the_serve_extra():
    """`sgan serve`, `sgan predict` and `sgan models` after `pip install '.[serve]'`: every package their code
    imports (and what those import) is one that the core and the serve extra bring, by their declared requirements."""
    from importlib.metadata import distribution, packages_distributions

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["serve"]]
    brought = set()
    while wanted:
        requirement = wanted.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in brought or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        brought.add(name)
        wanted += [Requirement(r) for r in distribution(name).requires or []]
    def imported(modules: str) -> set:
        code = f"import sys, json{modules}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
        return set(json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                             check=True).stdout))

    owners = packages_distributions()
    loaded = imported(", cli.main, deploy.serve, deploy.server, deploy.labeling, deploy.registry") - imported("")
    third_party = {owner.lower().replace("_", "-") for module in loaded for owner in owners.get(module, [])
                   if owner.lower() != "sgan"}
    assert third_party and not third_party - brought - OPTIONAL, sorted(third_party - brought)
