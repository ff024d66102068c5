"""Publishing against the model in production: real ONNX models compared through onnxruntime on the same test
images, an append-only history, and `latest` moved only for a candidate that is not worse."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_cli import sgan

from deploy import history
from deploy.champion import mcnemar_p
from deploy.publish import GateFailed, publish


def test_mcnemar_exact_p_values():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 1024) and mcnemar_p(0, 10) == mcnemar_p(10, 0)
    assert mcnemar_p(6, 4) == pytest.approx(0.7539, abs=1e-4)  # a few flips between equal models decide nothing


@pytest.fixture(scope="module")
def candidates(exported_run, tmp_path_factory):
    """The trained run, and a worse one: the same data and labels, 2 iterations instead of 60."""
    from deploy.export import export_run
    from sgan.config import TrainConfig
    from sgan.training.train import train

    root = tmp_path_factory.mktemp("candidates")
    good, worse = root / "good", root / "worse"
    shutil.copytree(exported_run[0], good)
    worse.mkdir()
    shutil.copy(good / "manifest.json", worse / "manifest.json")
    dataset = exported_run[2]
    labeled = np.asarray(json.loads((good / "manifest.json").read_text())["indices"])
    train(TrainConfig(iterations=2, batch_size=16, z_dim=16, checkpoint_every=2), dataset, labeled, worse)
    export_run(worse, calibration_size=100)
    for run in (good, worse):
        assert sgan("evaluate", "--run-dir", run, "--no-baseline").returncode == 0
        (run / "onnx_report.json").write_text(json.dumps(json.loads((good / "onnx_report.json").read_text())))
    accuracy = {r: json.loads((r / "metrics.json").read_text())["test_accuracy"] for r in (good, worse)}
    assert accuracy[good] - accuracy[worse] > 0.2, accuracy  # the premise: clearly worse on 200 images
    return good, worse


def test_only_a_candidate_that_is_not_worse_replaces_latest(candidates, tmp_path):
    good, worse = candidates
    models = tmp_path / "models"
    assert publish(good, models, accuracy_gate=0).name == "v0001"  # no champion yet: the gate alone
    assert publish(good, models, accuracy_gate=0).name == "v0002"  # the same predictions: not worse
    with pytest.raises(GateFailed, match=r"worse than v0002 on the same 200 test images: .* McNemar p [=<] "):
        publish(worse, models, accuracy_gate=0)
    assert os.readlink(models / "latest") == "v0002" and (models / "v0003" / "model.onnx").exists()
    assert "Against the model in production: worse than v0002" in (models / "v0003" / "MODEL_CARD.md").read_text()
    assert publish(worse, models, accuracy_gate=0, tolerance=1.0).name == "v0004"  # the user accepts any drop
    with pytest.raises(GateFailed, match=r"is below the gate 101.00%: .*v0005 published, `latest` left unchanged"):
        publish(good, models, accuracy_gate=1.01)
    events = history.read(models)
    assert [(e["version"], e["event"]) for e in events] == [
        ("v0001", "promoted"), ("v0002", "promoted"), ("v0003", "refused"), ("v0004", "promoted"),
        ("v0005", "refused")]
    assert events[0]["reason"].startswith("no model in production yet")
    assert events[2]["comparison"]["worse"] and events[2]["comparison"]["champion"] == "v0002"


def test_other_class_names_are_refused_unless_forced(candidates, tmp_path):
    good, _ = candidates
    renamed = tmp_path / "renamed"
    shutil.copytree(good, renamed)
    manifest = json.loads((renamed / "manifest.json").read_text())
    manifest["class_names"] = [f"class {k}" for k in range(10)]  # a model of other classes
    (renamed / "manifest.json").write_text(json.dumps(manifest))
    models = tmp_path / "models"
    publish(good, models, accuracy_gate=0)
    with pytest.raises(GateFailed, match=r"its classes .* differ from v0001's .* \(force to replace it anyway\)"):
        publish(renamed, models, accuracy_gate=0)
    assert os.readlink(models / "latest") == "v0001"
    assert publish(renamed, models, accuracy_gate=0, force=True).name == "v0003"


def test_sgan_models_lists_shows_rolls_back_and_promotes(candidates, tmp_path):
    good, worse = candidates
    models = tmp_path / "models"
    publish(good, models, accuracy_gate=0)
    publish(good, models, accuracy_gate=0)
    with pytest.raises(GateFailed):
        publish(worse, models, accuracy_gate=0)
    root = ("models", "--models-root", models)

    listing = sgan(*root, "list")
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.splitlines()[1:]
    assert [r[:10].split() for r in rows] == [["v0001"], ["*", "v0002"], ["v0003"]], listing.stdout
    assert "refused: worse than v0002" in rows[2] and "promoted: no model in production yet" in rows[0]
    assert "# sgan classifier v0003" in sgan(*root, "show", "v0003").stdout

    result = sgan(*root, "rollback")
    assert result.returncode == 0 and "latest -> v0001 (rolled back from v0002)" in result.stdout
    assert os.readlink(models / "latest") == "v0001"
    result = sgan(*root, "rollback")
    assert result.returncode == 2 and "v0001 is the first promoted version" in result.stderr
    result = sgan("models", "promote", "v0002", "--models-root", models)  # the option after the action, too
    assert result.returncode == 0 and os.readlink(models / "latest") == "v0002", result.stderr
    for args, fragment in ((("promote", "v0009"), "v0009: no such version"),
                           (("show", "v0042"), "v0042: no such version")):
        result = sgan(*root, *args)
        assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr
    result = sgan("models", "--models-root", tmp_path / "nowhere", "list")
    assert result.returncode == 2 and "no such models folder" in result.stderr
    assert [e["event"] for e in history.read(models)][-2:] == ["rolled back", "promoted by hand"]


def test_two_publishes_at_once_get_distinct_versions(candidates, tmp_path):
    good, _ = candidates
    models = tmp_path / "models"
    code = f"from deploy.publish import publish; print(publish({str(good)!r}, {str(models)!r}, 0).name)"
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    names = sorted(p.communicate(timeout=120)[0].strip() for p in processes)
    assert [p.returncode for p in processes] == [0, 0] and names == ["v0001", "v0002"]
    assert os.readlink(models / "latest") in names and len(history.read(models)) == 2
