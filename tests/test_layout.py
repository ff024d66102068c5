"""The house's rules, read from the source: each package imports only those below it (sgan < deploy < pipeline <
cli), deploy never imports TensorFlow, one module imports Horovod, and the model code knows neither Horovod nor
Prefect."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("sgan", "deploy", "pipeline", "cli")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (functions too), as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_a_package_imports_only_those_below_it(layer):
    above = LAYERS[LAYERS.index(layer) + 1:]
    found = {f"{path.relative_to(ROOT)}: {name}" for path in _modules(layer) for name in _imports(path)
             if name.split(".")[0] in above}
    assert not found


def test_deploy_never_imports_tensorflow():
    heavy = ("tensorflow", "keras", "tf2onnx", "horovod")
    found = {f"{path.relative_to(ROOT)}: {name}" for path in _modules("deploy") for name in _imports(path)
             if name.split(".")[0] in heavy}
    # Exporting reads the trained Keras model: the one place deploy/ may load TensorFlow, inside its functions.
    assert {f.split(":")[0] for f in found} <= {"deploy/export.py"}, found


def test_one_module_imports_horovod_and_no_model_code_imports_prefect():
    modules = [path for layer in ("sgan", "deploy", "pipeline", "cli") for path in _modules(layer)]
    horovod = {str(path.relative_to(ROOT)) for path in modules
               if any(name.split(".")[0] == "horovod" for name in _imports(path))}
    assert horovod == {"sgan/distributed/horovod.py"}
    prefect = {str(path.relative_to(ROOT)) for path in _modules("sgan")
               if any(name.split(".")[0] == "prefect" for name in _imports(path))}
    assert not prefect


def test_the_rules_see_a_violation(tmp_path):
    """The checker itself: an upward import in a function body is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from pipeline.flows import sgan_pipeline\n")
    assert "pipeline.flows" in _imports(module)
