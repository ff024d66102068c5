"""The `sgan` command as a user runs it: real processes, exit codes, files."""

import json
import os
import subprocess

import pytest
from conftest import SGAN, write_idx_dataset


def sgan(*args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([SGAN, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("damage", ["truncate", "corrupt-gzip", "bad-magic"])
def test_damaged_idx_file_exits_2_with_one_line_and_writes_nothing(tmp_path, damage):
    folder = write_idx_dataset(tmp_path / "data")
    target = folder / "train-images-idx3-ubyte.gz"
    payload = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(payload[: len(payload) // 2])
    elif damage == "corrupt-gzip":
        target.write_bytes(payload[:20] + bytes(len(payload) - 20))
    else:
        import gzip

        raw = gzip.decompress(payload)
        target.write_bytes(gzip.compress(b"\x01\x02" + raw[2:]))
    result = sgan("prepare", "--data", folder, "--labels", 20, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_user_errors_exit_2(tmp_path):
    folder = write_idx_dataset(tmp_path / "data")
    result = sgan("prepare", "--data", folder, "--labels", 15, "--run-dir", tmp_path / "run")
    assert result.returncode == 2 and "labels=15 must be a positive multiple" in result.stderr
    result = sgan("train", "--run-dir", tmp_path / "nothing")
    assert result.returncode == 2 and "manifest.json: not found (run `sgan prepare` first)" in result.stderr
    assert sgan("train").returncode == 2  # argparse: --run-dir is required


def test_prepare_train_evaluate_end_to_end(tmp_path):
    folder = write_idx_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert sgan("prepare", "--data", folder, "--labels", 20, "--seed", 3, "--run-dir", run).returncode == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["labels"] == 20 and manifest["seed"] == 3 and len(manifest["dataset"]["sha256"]) == 4

    result = sgan("train", "--run-dir", run, "--iterations", 40, "--batch-size", 16, "--checkpoint-every", 20,
                  "--eval-every", 20)
    assert result.returncode == 0, result.stderr
    for name in ("generator.keras", "discriminator.keras", "config.json", "history.json", "checkpoints/ckpt-40.index"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    result = sgan("evaluate", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and 0.0 <= metrics["baseline_test_accuracy"] <= 1.0
    assert metrics["baseline_steps"] == 40  # as many as the SGAN, under the cap
    counts = metrics["against_baseline"]  # the paired counts the own-data gate tests: they add up to the difference
    assert counts["sgan_only"] - counts["baseline_only"] == round(
        (metrics["test_accuracy"] - metrics["baseline_test_accuracy"]) * metrics["test_size"])
    assert len(metrics["per_class_accuracy"]) == 10
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    for picture in ("confusion_matrix.png", "samples.png", "learning_curves.png"):
        assert (run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"test accuracy {metrics['test_accuracy']:.2%}" in result.stdout

    # More labels: a new run starts from this one's weights; another network cannot.
    more = tmp_path / "more"
    assert sgan("prepare", "--data", folder, "--labels", 40, "--seed", 3, "--run-dir", more).returncode == 0
    result = sgan("train", "--run-dir", more, "--iterations", 2, "--batch-size", 16, "--warm-start", run)
    assert result.returncode == 0, result.stderr
    assert json.loads((more / "config.json").read_text())["warm_start"] == str(run.resolve())
    for refused, said in ((("--architecture", "conv"), "made for other data or networks (architecture wn-conv there, "
                                                       "conv here)"),
                          ((), "no generator.keras, discriminator.keras, manifest.json, config.json there")):
        source = run if refused else tmp_path / "data"
        result = sgan("train", "--run-dir", more, "--warm-start", source, *refused)
        assert result.returncode == 2 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_prepare_refuses_to_mix_labeled_subsets_in_one_run(tmp_path):
    folder = write_idx_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert sgan("prepare", "--data", folder, "--labels", 20, "--seed", 0, "--run-dir", run).returncode == 0
    (run / "checkpoints").mkdir()
    before = (run / "manifest.json").read_bytes()
    result = sgan("prepare", "--data", folder, "--labels", 20, "--seed", 1, "--run-dir", run)
    assert result.returncode == 2 and "checkpoints trained on another labeled subset" in result.stderr
    assert (run / "manifest.json").read_bytes() == before


def test_evaluate_without_trained_models_and_bad_hosts_exit_2(tmp_path):
    folder = write_idx_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert sgan("prepare", "--data", folder, "--labels", 20, "--run-dir", run).returncode == 0
    result = sgan("evaluate", "--run-dir", run)
    assert result.returncode == 2 and "config.json: not found (run `sgan train` first)" in result.stderr
    result = sgan("train", "--run-dir", run, "--hosts", "node1:four")
    assert result.returncode == 2 and "--hosts: 'node1:four' is not HOST or HOST:SLOTS" in result.stderr



@pytest.mark.parametrize("command", ["train", "pipeline"])
@pytest.mark.parametrize("text, fragment", [
    ("node1 slots=2\nnode2\n", "line 2: 'node2' names no slots (`HOST slots=N`)"),
    ("node1 slots=0\n", "line 1: 'node1 slots=0' is not `HOST slots=N` with N >= 1"),
    ("# nobody\n\n", "names no hosts"),
    ("node1 slots=1\nnode1 slots=1\n", "names a host twice"),
    (None, "cannot read it (No such file or directory)"),
])
def test_a_bad_hostfile_is_one_line_before_anything_starts(tmp_path, command, text, fragment):
    hostfile = tmp_path / "hostfile"
    if text is not None:
        hostfile.write_text(text)
    target = ["--run-dir", tmp_path / "run"] if command == "train" else ["--data", tmp_path / "data"]
    if command == "train":
        assert sgan("prepare", "--data", write_idx_dataset(tmp_path / "data"), "--run-dir", tmp_path / "run",
                    "--labels", 20).returncode == 0
    result = sgan(command, *target, "--hostfile", hostfile)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"sgan: error: --hostfile {hostfile}")
    assert fragment in result.stderr.strip().splitlines()[-1] and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("args, said", [
    (("--data", "/nonexistent"), "/nonexistent: no such file or folder"),
    (("--data", "{folder}", "--image-size", "33x32"), "33x32: both sides must be divisible by 4"),
    (("--data", "{idx}", "--image-size", "32x32"), "--image-size and --channels apply to image folders only"),
    (("--data", "{folder}/labeled"), "labeled: missing train-images-idx3-ubyte.gz"),
    (("--data", "{text}"), "not an image folder (with labeled/), a folder of IDX files, or an .npz"),
    (("--data", "{broken}"), "unlabeled: missing (the unlabeled images are what"),
    (("--accuracy-gate", "5"), "--accuracy-gate 5.0: must be between 0 and 1"),
    (("--workers", "0"), "--workers 0: must be at least 1"),
    (("--time-budget", "-3"), "--time-budget -3.0: must be above 0 seconds"),
])
def test_pipeline_input_is_checked_before_prefect_starts(tmp_path, args, said):
    """One line and exit 2 within 2 seconds: the flow's start-up (Prefect's server, tens of seconds) never begins."""
    import shutil
    import time

    from conftest import write_image_folder

    paths = {"folder": write_image_folder(tmp_path / "photos", labeled_per_class=1, unlabeled=2, test_per_class=0),
             "idx": write_idx_dataset(tmp_path / "idx"),
             "broken": write_image_folder(tmp_path / "broken", labeled_per_class=1, unlabeled=2, test_per_class=0)}
    shutil.rmtree(paths["broken"] / "unlabeled")
    paths["text"] = tmp_path / "notes.txt"
    paths["text"].write_text("not images")
    started = time.monotonic()
    result = sgan("pipeline", *(a.format(**paths) for a in args))
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and elapsed < 2, (result.stderr, elapsed)
    assert "prefect" not in result.stdout.lower()


def test_version_and_every_option_has_help_with_its_default():
    import re

    result = sgan("--version")
    assert result.returncode == 0 and re.fullmatch(r"sgan \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout
    commands = ["prepare", "train", "evaluate", "export", "predict", "models", "models list", "serve", "label",
                "pipeline"]
    for command in commands:
        text = sgan(*command.split(), "--help").stdout
        options = re.split(r"\n(?=  -)", text.split("options:", 1)[1])
        for option in options[1:]:  # after -h
            name, _, said = option.strip().partition("  ")
            if " " in name and not said.strip():  # the help begins on the next line
                name, said = option.strip().split("\n", 1)
            assert said.strip(), f"sgan {command}: {name} has no help"
    assert "(default 8000)" in " ".join(sgan("serve", "--help").stdout.split())
    assert "(default runs/pipeline/models)" in " ".join(sgan("models", "list", "--help").stdout.split())


def test_a_time_budget_on_two_workers_sets_one_count_that_a_fixed_count_repeats(tmp_path):
    """`sgan train --time-budget` through horovodrun: rank 0's timing decides the count, every worker stops there,
    and the count is written where `--iterations COUNT` can repeat it. (The seed preset, without a decay, has the
    shortest run a budget can choose: the timing's 200 iterations; the rule for a decay is test_train's.)"""
    folder = write_idx_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert sgan("prepare", "--data", folder, "--labels", 20, "--run-dir", run).returncode == 0
    result = sgan("train", "--run-dir", run, "--preset", "seed", "--workers", 2, "--batch-size", 8,
                  "--time-budget", 10, "--iterations", 100_000, "--checkpoint-every", 100_000)
    assert result.returncode == 0, result.stderr
    count = json.loads((run / "config.json").read_text())["iterations"]
    assert 200 <= count < 100_000 and count % 50 == 0  # at least the timed iterations
    assert "time budget 10 s at " in result.stdout and f"`--iterations {count}` without a budget" in result.stdout
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["step"] == count and (run / f"checkpoints/ckpt-{count}.index").exists()
