"""Faults a rerun meets, through the `sgan` command as users type it: a damaged checkpoint falls back to the previous
one (moved aside, not deleted), none usable is one line, another configuration is one line, a damaged saved
model is one line."""

import json
import shutil

import pytest
from conftest import write_idx_dataset
from test_cli import sgan

TRAIN = ("--preset", "seed", "--batch-size", 8, "--checkpoint-every", 10)


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """30 iterations of the seed preset: checkpoints at 10, 20 and 30."""
    tmp = tmp_path_factory.mktemp("faults")
    run = tmp / "run"
    assert sgan("prepare", "--data", write_idx_dataset(tmp / "data"), "--labels", 20, "--run-dir", run).returncode == 0
    result = sgan("train", "--run-dir", run, "--iterations", 30, *TRAIN)
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.fixture
def trained(trained_once, tmp_path):
    """A copy of that run for each test to damage."""
    return shutil.copytree(trained_once, tmp_path / "run")


def _truncate(run, iteration: int):
    data = run / "checkpoints" / f"ckpt-{iteration}.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])


def test_a_truncated_newest_checkpoint_is_moved_aside_and_the_previous_one_resumes(trained):
    _truncate(trained, 30)
    result = sgan("train", "--run-dir", trained, "--iterations", 40, *TRAIN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"checkpoint {trained / 'checkpoints' / 'ckpt-30'} cannot be read" in result.stderr
    assert "from iteration 20" in result.stdout and "Traceback" not in result.stderr
    damaged = trained / "checkpoints" / "damaged"
    assert sorted(p.name for p in damaged.iterdir()) == ["ckpt-30.data-00000-of-00001", "ckpt-30.index"]
    assert (trained / "checkpoints" / "ckpt-40.index").exists()
    assert [r["step"] for r in json.loads((trained / "history.json").read_text())][-1] == 40


def test_no_usable_checkpoint_is_one_line_and_exit_2(trained):
    for iteration in (10, 20, 30):
        _truncate(trained, iteration)
    result = sgan("train", "--run-dir", trained, "--iterations", 40, *TRAIN)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sgan: error: no usable checkpoint in") and "ckpt-10, ckpt-20, ckpt-30" in last
    assert "start over with a new --run-dir" in last
    assert len(list((trained / "checkpoints" / "damaged").iterdir())) == 6


def test_another_configuration_is_refused_before_restoring_and_iterations_may_change(trained):
    result = sgan("train", "--run-dir", trained, "--iterations", 40, "--preset", "improved", "--batch-size", 8)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds checkpoints trained with another configuration" in lines[0]
    assert "architecture 'conv' there, 'wn-conv' asked" in lines[0] and "use a new --run-dir" in lines[0]
    assert json.loads((trained / "config.json").read_text())["architecture"] == "conv"  # nothing rewritten
    result = sgan("train", "--run-dir", trained, "--iterations", 32, *TRAIN[:-1], 16)  # other length and interval
    assert result.returncode == 0 and "from iteration 30" in result.stdout, result.stderr[-2000:]
    config = json.loads((trained / "config.json").read_text())
    (trained / "config.json").write_text(json.dumps({k: v for k, v in config.items()  # settings added later
                                                     if k not in ("pseudo_label_mask", "distribution_alignment")}))
    result = sgan("train", "--run-dir", trained, "--iterations", 34, *TRAIN)  # missing: their defaults
    assert result.returncode == 0 and "from iteration 32" in result.stdout, result.stderr[-2000:]


def test_a_damaged_saved_model_is_one_line_for_evaluate_and_export(trained):
    model = trained / "discriminator.keras"
    model.write_bytes(model.read_bytes()[:model.stat().st_size // 2])
    for command in ("evaluate", "export"):
        result = sgan(command, "--run-dir", trained)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{model}: cannot load the trained model" in lines[0]
    assert not (trained / "model.onnx").exists() and not (trained / "metrics.json").exists()
