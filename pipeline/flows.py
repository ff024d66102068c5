"""The `sgan-pipeline` flow: prepare -> train (horovodrun) -> evaluate -> export -> quantize -> publish.

Each task is a thin wrapper over `sgan/` or `deploy/`; training runs as a `sgan train --workers N`
subprocess (which starts horovodrun), so a retry of the task resumes from the run's last checkpoint.
"""

import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from pipeline import provenance
from sgan import atomic
from sgan.distributed import launch
from sgan.errors import ERROR_PREFIX, EXIT_USER_ERROR, UserError
from sgan.run import RunDir

PLACEMENT = ("--workers", "--hosts", "--ssh-port", "--ssh-identity-file", "--network-interface", "--checkpoint-every")
DEFAULT_WORKERS = 2  # with Horovod installed; one without it
PROGRESS = re.compile(r"sgan train:\s+\d+%.*?\|\s*(\d+)/(\d+)")  # tqdm: "sgan train:  45%|███  | 270/600"


def _dataset_key(context, parameters) -> str:
    """Content hash of the data files (every file below a folder), the options, label budget and seed: a second
    run with the same inputs skips prepare. Without `data` it is the MNIST download, whose checksums fix it."""
    source = Path(parameters["data"]) if parameters["data"] else None
    files = sorted(source.rglob("*")) if source and source.is_dir() else [source] if source else []
    digest = hashlib.sha256()
    for path in (f for f in files if f.is_file()):
        digest.update(str(path.relative_to(source) if source.is_dir() else path.name).encode() + path.read_bytes())
    options = [parameters[k] for k in ("labels", "seed", "image_size", "channels", "skip_bad")]
    return f"prepare-{digest.hexdigest()[:32]}-" + "-".join(map(str, options))


@task(cache_key_fn=_dataset_key, persist_result=True)
def prepare_dataset(data: str | None, labels: int | None, seed: int, image_size: str | None,
                    channels: int | None, skip_bad: bool = False) -> dict:
    from sgan import data as datasets
    from sgan.data.download import download_mnist
    from sgan.images import parse_size

    try:
        options = {k: v for k, v in (("image_size", image_size and parse_size(image_size)), ("channels", channels),
                                     ("skip_bad", skip_bad)) if v}
    except ValueError as e:
        raise UserError(f"image_size: {e}") from None
    dataset = datasets.load(data or download_mnist(), **options)
    manifest = datasets.manifest(dataset, datasets.labeled_subset(dataset, labels, seed), seed)
    get_run_logger().info("%s", datasets.describe(manifest))
    return manifest


def _not_a_user_error(task, task_run, state) -> bool:
    """A retry resumes a failed training from its checkpoint; it cannot mend what the user must change first."""
    return not isinstance(state.result(raise_on_failure=False), UserError)


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=_not_a_user_error)
def train(run_dir: Path, manifest: dict, options: list[str]):
    """Runs `sgan train` (horovodrun underneath), streaming its log into Prefect; resumes if checkpoints exist."""
    logger = get_run_logger()
    RunDir(run_dir).write_manifest(manifest)
    command = [sys.executable, "-m", "cli", "train", "--run-dir", str(run_dir), *options]
    logger.info("%s", " ".join(command))
    progress = create_progress_artifact(0.0, description="training iterations done (%)")
    reported = -1
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                               preexec_fn=launch.die_with_parent)
    buffer, tail = b"", []
    while chunk := process.stdout.read(4096):
        *lines, buffer = re.split(rb"[\r\n]", buffer + chunk)
        for line in (raw.decode(errors="replace").strip() for raw in lines):
            if match := PROGRESS.search(line):
                percent = 100 * int(match.group(1)) // int(match.group(2))
                if percent // 5 > reported // 5:
                    update_progress_artifact(progress, percent)
                    logger.info("%s", line)
                    reported = percent
            elif line:
                logger.info("%s", line)
                tail = (tail + [line])[-20:]
    if process.wait() == EXIT_USER_ERROR and (said := [t for t in tail if ERROR_PREFIX in t]):
        raise UserError(said[-1].split(ERROR_PREFIX, 1)[1])
    if process.returncode != 0:
        raise RuntimeError(f"training exited with code {process.returncode}:\n" + "\n".join(tail))
    update_progress_artifact(progress, 100)


@task
def evaluate(run_dir: Path) -> dict:
    from sgan.evaluation.report import evaluate_run

    return evaluate_run(run_dir)


@task
def export_onnx(run_dir: Path) -> dict:
    """Converts and verifies; raises (nothing written) if TF and ONNX disagree beyond the bounds."""
    from deploy.export import export_float

    return export_float(run_dir)


@task
def quantize(run_dir: Path) -> dict:
    from deploy.export import export_int8

    return export_int8(run_dir)


@task
def publish(run_dir: Path, models_root: Path, accuracy_gate: float | None, allow_test_leaks: bool, tolerance: float,
            force_promotion: bool, onnx_report: dict) -> dict:
    """A new version directory always; `latest` only past the gates. A refusal is an outcome, not a failure: the
    task completes and says why."""
    from deploy.publish import GateFailed
    from deploy.publish import publish as publish_version

    atomic.write_json(run_dir / "onnx_report.json", onnx_report)
    try:
        version, refusal = publish_version(run_dir, models_root, accuracy_gate, allow_test_leaks, tolerance,
                                           force_promotion), None
    except GateFailed as failed:
        version, refusal = failed.version_dir, str(failed)
    _model_card_artifact(version, promoted=refusal is None)
    return {"version": str(version), "refusal": refusal}


@task
def suggest_labels(run_dir: Path, count: int = 32) -> list[dict]:
    """The model's guess for every unlabeled image (predictions.csv) and the `count` it is least sure about, drawn
    with their guesses in to_label.png: the images worth labeling next."""
    from deploy.labeling import suggest_for_run

    chosen, unlabeled = suggest_for_run(run_dir, count)
    create_markdown_artifact("\n".join(
        [f"# Label these next ({len(chosen)} least certain of {unlabeled} unlabeled images)", "",
         f"Drawn in `{run_dir / 'to_label.png'}`; every guess in `{run_dir / 'predictions.csv'}`.", "",
         "| image | guess | probability |", "| --- | --- | --- |"]
        + [f"| {c['path']} | {c['guess']} | {c['probability']:.2f} |" for c in chosen]), key="sgan-label-next")
    return chosen


def _model_card_artifact(version_dir: Path, promoted: bool):
    where = f"Published at `{version_dir}`" + (" and promoted to `latest`." if promoted else "; NOT promoted to `latest`.")
    create_markdown_artifact((version_dir / "MODEL_CARD.md").read_text() + "\n" + where, key="sgan-model-card")


def _warm_start_from(models_root: Path, manifest: dict) -> Path | None:
    """The version `latest` serves, if a run on this data can start from its weights; else says why not."""
    from sgan.training import warm

    if not (models_root / "latest").is_dir():
        print("warm start: no model in production yet, so training starts from scratch")
        return None
    try:
        champion = warm.find(models_root)
    except UserError as e:
        print(f"warm start: {e}; training starts from scratch")
        return None
    if differs := warm.differences(champion, manifest):
        print(f"warm start: {champion.name} was made for other data ({'; '.join(differs)}); training starts from "
              "scratch")
        return None
    return champion


def _run_name(manifest: dict, options: list[str], global_batch: int) -> str:
    """The run folder's name follows from the data and what shapes the model, the global batch among it (not where
    it trains, nor how the batch is split), so a flow run killed mid-training (or its orchestrator) is resumed from
    its checkpoint by the same command run again, on the same or another number of workers."""
    pairs = dict(zip(options[::2], options[1::2]))
    shaping = {k: v for k, v in pairs.items() if k not in PLACEMENT + ("--batch-size",)}
    shaping["global_batch"] = global_batch
    digest = hashlib.sha256(json.dumps([manifest, shaping], sort_keys=True).encode()).hexdigest()
    return f"{options[options.index('--preset') + 1]}-{digest[:12]}"


def _tasks_seconds(flow_run_id) -> float:
    """The tasks' own run time, as Prefect recorded it: the rest of the flow's wall time is orchestration."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sum(run.total_run_time.total_seconds() for run in runs)


@flow(name="sgan-pipeline", log_prints=True)
def sgan_pipeline(
    preset: Literal["seed", "improved"] = "improved",
    labels: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    hosts: str | None = None,
    ssh_port: int | None = None,
    ssh_identity_file: str | None = None,
    network_interface: str | None = None,
    batch_size: int | None = None,
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32",
    architecture: Literal["auto", "conv", "mlp", "wn-conv", "conv-gap"] | None = None,
    augment: Literal["auto", "shifts", "photos", "randaugment"] | None = None,
    iterations: int | None = None,
    time_budget: float | None = None,
    checkpoint_every: int | None = None,
    data: str | None = None,
    image_size: str | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    accuracy_gate: float | None = None,
    allow_test_leaks: bool = False,
    tolerance: float = 0.0,
    force_promotion: bool = False,
    warm_start: bool = False,
    output_root: str = "runs/pipeline",
) -> dict:
    """Trains an SGAN classifier on `data` and publishes it as a verified ONNX model.

    `data`: an image folder (labeled/<class>/, unlabeled/, optional test/<class>/), an .npz, or MNIST IDX files
    (default: the MNIST download, of which `labels` (default 100) keep their label). `accuracy_gate`: `latest`
    moves only at or above this test accuracy (0: promote unevaluated models too); unset, it is 90% on benchmark
    data, and on an image folder the model must beat its supervised-only baseline on the test images (McNemar's
    test), or, without test images, it is promoted with a warning.
    `warm_start`: begin from the weights of the model `latest` serves, when it was made for the same classes and
    image shape (otherwise from scratch, and the log says why). `skip_bad`: leave out the labeled and test images
    that cannot be used, instead of naming them all and stopping."""
    started = time.perf_counter()
    root = Path(output_root).resolve()

    manifest = prepare_dataset(data, labels, seed, image_size, channels, skip_bad)
    if not manifest["dataset"]["test_size"]:
        print("no test set: the model will be trained and exported, but it is unevaluated (no test accuracy)")
    options = ["--preset", preset, "--precision", precision]
    if workers is None and hosts is None:  # with hosts, their slots say how many
        workers = DEFAULT_WORKERS if launch.horovodrun() else 1
        if workers == 1:
            print("Horovod is not installed: training with one worker (`make env` builds an environment with it)")
    count = launch.worker_count(workers, launch.parse_hosts(hosts) if hosts else None)
    if batch_size is None:  # the preset's global batch, split over the workers: the model `sgan train` makes
        from sgan.config import PRESETS

        batch_size = max(1, PRESETS[preset].batch_size // count)
    for flag, value in (("--workers", workers), ("--hosts", hosts), ("--ssh-port", ssh_port),
                        ("--ssh-identity-file", ssh_identity_file), ("--network-interface", network_interface),
                        ("--batch-size", batch_size), ("--iterations", iterations), ("--time-budget", time_budget),
                        ("--architecture", architecture), ("--augment", augment),
                        ("--checkpoint-every", checkpoint_every)):
        options += [flag, str(value)] if value is not None else []
    run_dir = root / "runs" / _run_name(manifest, options, count * batch_size)
    made_of = provenance.of_run(run_dir.name)  # where the weights start from is not part of it
    if same := provenance.serving_the_same(root / "models", made_of):
        print(f"nothing to do: `latest` ({same.name}) was made from the same data, configuration and code")
        return _summary({"version": str(same), "refusal": None, "unchanged": True},
                        json.loads((same / "metrics.json").read_text()),
                        json.loads((same / "onnx_report.json").read_text()), root, run_dir, started)
    if warm_start and (champion := _warm_start_from(root / "models", manifest)):
        options += ["--warm-start", str(champion)]
        run_dir = run_dir.with_name(f"{run_dir.name}-from-{champion.name}")
    train(run_dir, manifest, options)

    metrics = evaluate(run_dir)
    create_table_artifact([{"metric": k, "value": v} for k, v in metrics.items()
                           if isinstance(v, (int, float)) or v is None], key="sgan-metrics")
    onnx_report = {"float": export_onnx(run_dir), "int8": quantize(run_dir)}
    if manifest["labeled_by"] == "source":
        suggest_labels(run_dir)
    atomic.write_json(run_dir / provenance.FILE, made_of)
    published = publish(run_dir, root / "models", accuracy_gate, allow_test_leaks, tolerance, force_promotion,
                        onnx_report)
    return _summary(published, metrics, onnx_report, root, run_dir, started)


def _summary(published: dict, metrics: dict, onnx_report: dict, root: Path, run_dir: Path, started: float) -> dict:
    wall_s = time.perf_counter() - started
    tasks_s = _tasks_seconds(runtime.flow_run.id)
    version = Path(published["version"])
    return {
        "version": version.name,
        "promoted": published["refusal"] is None,
        "refusal": published["refusal"],
        "unchanged": published.get("unchanged", False),
        "against_baseline": (metrics.get("against_baseline") or {}).get("summary"),
        "test_accuracy": metrics["test_accuracy"],
        "baseline_test_accuracy": metrics.get("baseline_test_accuracy"),
        "seconds_to_validation": metrics.get("seconds_to_validation"),
        "onnx_max_abs_diff": onnx_report["float"]["parity"]["max_abs_diff"],
        "onnx_same_class": onnx_report["float"]["parity"]["same_class"],
        "int8_test_accuracy": onnx_report["int8"]["test_accuracy"],
        "model": str(version / "model.onnx"),
        "edge_model": str(version / "model.int8.onnx") if onnx_report["int8"]["published"] else None,
        "latest": str(root / "models" / "latest"),
        "run_dir": str(run_dir),
        "wall_s": round(wall_s, 1),
        "tasks_s": round(tasks_s, 1),
        "orchestration_s": round(wall_s - tasks_s, 1),
    }
