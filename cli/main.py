"""The `sgan` command line, above the core (`sgan/`), the deployment (`deploy/`) and the flows (`pipeline/`).
User errors print one line and exit 2; no tracebacks for bad input."""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from deploy.serve import add_arguments as add_serve_arguments
from sgan import data
from sgan.config import ARCHITECTURES, AUGMENTATIONS, OWN_DATA_TIME_BUDGET, PRECISIONS, PRESET_HELP, PRESETS
from sgan.errors import EXIT_NOT_PROMOTED, UserError, exit_code
from sgan.run import RunDir
from sgan.training import options

MODELS_ROOT = Path("runs/pipeline/models")  # the flow's default OUTPUT_ROOT/models


def cmd_prepare(args):
    from sgan.data.download import download_mnist

    source = args.data if args.data else download_mnist(args.download_dir)
    dataset = data.load(source, **_source_options(args))
    labeled = data.labeled_subset(dataset, args.labels, args.seed)
    manifest = data.manifest(dataset, labeled, args.seed)
    run = RunDir(args.run_dir)
    if (run / "manifest.json").exists() and (run / "checkpoints").exists() and run.manifest() != manifest:
        raise UserError(f"{args.run_dir}: holds checkpoints trained on another labeled subset; use a new --run-dir")
    run.write_manifest(manifest)
    print(data.describe(manifest))
    print(f"manifest: {run / 'manifest.json'}")


def _source_options(args) -> dict:
    options = {"image_size": args.image_size, "channels": args.channels, "cache_dir": args.cache_dir,
               "skip_bad": args.skip_bad or None}
    return {k: v for k, v in options.items() if v is not None}


def cmd_train(args):
    from sgan.distributed import launch, worker
    from sgan.training import memory, resume, warm

    run = RunDir(args.run_dir)
    manifest = run.manifest()
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers} must be at least 1")
    hosts = (launch.read_hostfile(args.hostfile) if args.hostfile
             else launch.parse_hosts(args.hosts) if args.hosts else None)
    workers = launch.worker_count(args.workers, hosts)
    if args.batch_size is None:  # the preset's global batch, split over the workers: `sgan pipeline` does the same
        args.batch_size = max(1, PRESETS[args.preset].batch_size // workers)
    cfg = options.config(args, manifest)
    if args.time_budget is None and cfg.time_budget == OWN_DATA_TIME_BUDGET:
        print(f"your own images: training for about {OWN_DATA_TIME_BUDGET / 60:.0f} minutes (--time-budget SECONDS "
              "or --iterations COUNT to change it)", flush=True)
    if cfg.warm_start:  # workers get the version `latest` points to now, even if it moves while they start
        args.warm_start = str(warm.source(cfg.warm_start, manifest, cfg))
        cfg = dataclasses.replace(cfg, warm_start=args.warm_start)
    memory.check(cfg, tuple(manifest["dataset"]["image_shape"]), manifest["dataset"]["num_classes"],
                 max(h.slots for h in hosts) if hosts else workers)
    resume.check_config(run.path, cfg.to_dict())
    resume.fall_back(run.path)
    if workers == 1 and not hosts:
        return worker.train_here(run, cfg)
    run.dataset()  # the data is valid and unchanged here before any worker starts
    ssh = launch.Ssh(args.ssh_port, str(args.ssh_identity_file) if args.ssh_identity_file else None)
    run_dir = args.run_dir.resolve()
    if hosts:
        launch.preflight(hosts, ssh, {"interpreter": sys.executable, "run folder": run_dir,
                                      "data": manifest["dataset"]["source"]})
    command = launch.horovodrun_command(workers, hosts, ssh, args.network_interface,
                                        launch.worker_command(run_dir, options.as_arguments(args)))
    return launch.run(command, hosts, ssh, run_dir)


def cmd_evaluate(args):
    from sgan.evaluation.report import evaluate_run

    metrics = evaluate_run(args.run_dir, baseline=not args.no_baseline)
    baseline = metrics.get("baseline_test_accuracy")
    if metrics["test_accuracy"] is None:
        print(f"no test set: trained with {metrics['labels']} labels, unevaluated (no test accuracy)")
    else:
        print(f"test accuracy {metrics['test_accuracy']:.2%} with {metrics['labels']} labels"
              + (f", supervised-only baseline {baseline:.2%}" if baseline is not None else ""))
    print(f"metrics: {args.run_dir / 'metrics.json'}")


def cmd_export(args):
    from deploy.export import export_run

    report = export_run(args.run_dir)
    int8 = report["int8"]
    parity = report["float"]["parity"]
    print(f"model.onnx: parity max |dp| {parity['max_abs_diff']:.1e}, same class {parity['same_class']:.2%}, "
          f"test accuracy {_percent(int8['float_test_accuracy'])}, {report['float']['bytes'] / 1024:.0f} KiB")
    print(f"model.int8.onnx: test accuracy {_percent(int8['test_accuracy'])}, agrees with the float model on "
          f"{int8['agreement_with_float']:.2%}, {int8['bytes'] / 1024:.0f} KiB, "
          + ("published" if int8["published"] else "NOT published (less accurate than allowed)"))


def _percent(value) -> str:
    return "n/a (no test set)" if value is None else f"{value:.2%}"


def _read_arrays(path: Path):
    """.npy -> as stored; anything else is read as an IDX file."""
    from sgan.data import idx

    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: not a readable .npy array ({e})") from None
    return idx.parse(idx.read_bytes(path), path)


def cmd_predict(args):
    """Images (files or folders of PNG, JPEG, WebP, AVIF or HEIC, any size: brought to the model's shape) and
    arrays (.npy, IDX)."""
    from deploy import labeling
    from deploy.runtime import Classifier
    from sgan import images

    classifier = Classifier(args.model)
    for path in args.paths:
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
    image_paths = [p for p in args.paths if p.is_dir() or p.suffix.lower() in images.EXTENSIONS]
    files = labeling.image_files(image_paths)
    array, names, skipped = labeling.read_images(files, classifier.image_shape)
    for path, reason in skipped:
        if path in args.paths:  # a file named on the command line must be readable
            raise UserError(f"{path}: not a readable {images.NAMES} image ({reason})")
    names = [str(n) for n in names]
    for path in (p for p in args.paths if p not in image_paths):
        arrays = _read_arrays(path)
        if arrays.ndim == 3 and classifier.image_shape[-1] == 1:
            arrays = arrays[..., None]
        try:
            classifier.check(arrays)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
        array = np.concatenate([array, arrays])
        names += [f"{path}[{i}]" for i in range(len(arrays))] if len(arrays) > 1 else [str(path)]

    probabilities = labeling.classify(classifier, array)
    classes = probabilities.argmax(axis=1)
    results = [{"file": name, "class": int(c), "label": classifier.class_names[c], "probability": round(float(p[c]), 6)}
               for name, c, p in zip(names, classes, probabilities)]
    if args.csv:
        labeling.write_csv(args.csv, names, classifier.class_names, probabilities)
        print(f"{len(results)} images classified: {args.csv}")
    elif args.json:
        print(json.dumps(results))
    else:
        for result in results:
            print(f"{result['file']}: {result['label']} ({result['probability']:.3f})")
    if skipped:
        print(f"skipped {len(skipped)} unreadable files, e.g. {skipped[0][0]} ({skipped[0][1]})", file=sys.stderr)
    if args.uncertain:
        grid = args.grid or (args.csv.with_suffix(".uncertain.png") if args.csv else Path("uncertain.png"))
        chosen = labeling.draw_uncertain(array, probabilities, classifier.class_names, args.uncertain, grid)
        print(f"the {len(chosen)} images the model is least sure about (label these next), drawn in {grid}:")
        for i in chosen:
            print(f"  {names[i]}: {results[i]['label']} ({results[i]['probability']:.3f})")


def cmd_models(args):
    from deploy import registry

    root = args.models_root
    if args.action == "list":
        table = registry.rows(root)
        print(f"{'':2}{'version':8} {'published':25} {'test':>7} {'baseline':>8} {'labels':>6}  decision")
        for row in table:
            print(f"{'*' if row['latest'] else ' ':2}{row['version']:8} {row['date']:25} "
                  f"{_cell(row['test_accuracy']):>7} {_cell(row['baseline']):>8} {row['labels'] or '-':>6}  "
                  f"{row['decision']}"
                  + (f": {row['reason']}" if row["reason"] else ""))
        if not table:
            print(f"no versions in {root}")
    elif args.action == "show":
        print((registry.version_dir(root, args.version) / "MODEL_CARD.md").read_text())
    elif args.action == "promote":
        print(f"latest -> {registry.promote(root, args.version)}")
    else:
        was, now = registry.rollback(root)
        print(f"latest -> {now} (rolled back from {was})")


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2%}"


def cmd_serve(args):
    from deploy.serve import run

    run(args)


def cmd_label(args):
    from deploy import registry
    from deploy.labeler import Labeler, Retraining
    from deploy.serve import announce, check_port

    model = args.model
    if not model.exists():
        raise UserError(f"{model}: no such file or folder (publish a model with `sgan pipeline --data "
                        f"{args.folder}`, or name an .onnx file)")
    models_root = model.parent if registry.is_version(model) else model if model.is_dir() else None
    if models_root is not None and models_root.name != "models":
        raise UserError(f"{model}: a models root is the flow's OUTPUT_ROOT/models (or name a version folder in one, "
                        "or an .onnx file)")
    output_root = models_root.parent if models_root else args.output_root
    command = [sys.executable, "-m", "cli", "pipeline", "--data", str(args.folder.resolve()), "--warm-start",
               "--output-root", str(output_root.resolve())]
    for option in ("iterations", "workers", "accuracy_gate"):
        value = getattr(args, option)
        command += [f"--{option.replace('_', '-')}", str(value)] if value is not None else []
    models_root = output_root / "models"
    if args.retrain:
        retraining = Retraining(command, models_root, on_promoted=lambda: None, echo=True)
        retraining.start()
        return _report_retraining(retraining.wait())

    check_port("127.0.0.1", args.port)
    announce(model)
    labeler = Labeler(args.folder, model)

    def promoted():  # rank by the new model from now on
        labeler.model = models_root
        labeler.load_model()

    import uvicorn

    from deploy.label_app import create_app

    app = create_app(labeler, Retraining(command, models_root, on_promoted=promoted))
    print(f"sgan label: {len(labeler.ranked)} unlabeled images ranked by {labeler.served.version}; open "
          f"http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def _report_retraining(status: dict) -> int:
    after, before = status["after"], status["before"]
    if after is None:
        print("\n".join(status["log"]), file=sys.stderr)
        raise UserError(f"the retraining flow run published no new version (exit code {status['exit_code']})")
    was = f"{before['version']} {_percent(before['test_accuracy'])}" if before else "no model before"
    print(f"{after['version']}: test accuracy {_percent(after['test_accuracy'])} against {was}; "
          + ("promoted to latest" if status["promoted"] else f"not promoted ({after['reason']})"))
    return 0 if status["promoted"] else EXIT_NOT_PROMOTED


def cmd_pipeline(args):
    import time

    from pipeline.settings import apply_embedded_defaults

    from sgan.distributed import launch

    started = time.perf_counter()
    if args.hostfile:  # read here, so that a bad one is one line before Prefect starts
        args.hosts = ",".join(f"{h.name}:{h.slots}" for h in launch.read_hostfile(args.hostfile))
    _check_pipeline(args)
    apply_embedded_defaults()
    from pipeline.flows import sgan_pipeline

    parameters = {k: v for k, v in vars(args).items()
                  if k not in ("command", "func", "hostfile") and v is not None}
    if args.image_size:
        parameters["image_size"] = "x".join(map(str, args.image_size))
    summary = sgan_pipeline(**{**parameters, "data": str(args.data) if args.data else None})
    baseline = summary["baseline_test_accuracy"]
    print(f"\ntest accuracy {_percent(summary['test_accuracy'])}"
          + (f" (supervised-only baseline {baseline:.2%})" if baseline is not None else ""))
    if summary["against_baseline"]:
        print(summary["against_baseline"][0].upper() + summary["against_baseline"][1:])
    if summary["seconds_to_validation"]:
        print("training time to validation accuracy: " + ", ".join(
            f"{m}% {'not reached' if s is None else f'{s:.0f} s'}" for m, s in summary["seconds_to_validation"].items()))
    print(f"ONNX parity: max |p_tf - p_onnx| {summary['onnx_max_abs_diff']:.1e}, same class {summary['onnx_same_class']:.2%}")
    print(f"INT8 edge model test accuracy {_percent(summary['int8_test_accuracy'])}")
    print(f"model: {summary['model']}" + (f"\nedge model: {summary['edge_model']}" if summary["edge_model"] else ""))
    wall = time.perf_counter() - started
    print(f"wall time {wall:.0f} s: tasks {summary['tasks_s']:.0f} s, Prefect {wall - summary['tasks_s']:.0f} s "
          f"(API start-up and shutdown {wall - summary['wall_s']:.0f} s, orchestration in the flow "
          f"{summary['orchestration_s']:.0f} s)")
    if summary["promoted"]:
        print(f"latest: {summary['latest']}" + ("" if summary["unchanged"] else f" -> {summary['version']}"))
        return 0
    models = Path(summary["latest"]).parent
    print(f"\n{summary['version']} published, NOT promoted: {summary['refusal']}\n"
          f"next: label more images (sgan label DATA --model {models}) or train longer (--time-budget SECONDS); "
          f"to serve it anyway: sgan models promote {summary['version']} --models-root {models}")
    return EXIT_NOT_PROMOTED


def _check_pipeline(args):
    """What the flow would refuse after Prefect's start-up (tens of seconds), refused here in a second."""
    from sgan.data import sources

    for name, low, high in (("labels", 1, None), ("workers", 1, None), ("batch_size", 1, None),
                            ("iterations", 1, None), ("checkpoint_every", 1, None), ("ssh_port", 1, 65535),
                            ("accuracy_gate", 0, 1), ("tolerance", 0, 1)):
        value = getattr(args, name)
        if value is not None and (value < low or (high is not None and value > high)):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise UserError(f"--{name.replace('_', '-')} {value}: must be {span}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise UserError(f"--time-budget {args.time_budget}: must be above 0 seconds")
    if args.data is not None:
        sources.check(args.data, args.image_size, args.channels)
    if args.output_root is not None and Path(args.output_root).exists() and not Path(args.output_root).is_dir():
        raise UserError(f"--output-root {args.output_root}: a file, not a folder")


def _image_size(text: str) -> tuple:
    from sgan.images import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    """A wrong argument is one line, as every other user error (the usage is one --help away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, when it has one worth saying."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, True, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default %(default)s)".strip()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sgan")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _help_everywhere(parser: argparse.ArgumentParser):
    parser.formatter_class = _Help
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for child in action.choices.values():
            _help_everywhere(child)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sgan", description="Semi-supervised GAN classifier from few labels.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="validate a dataset and choose the labeled subset")
    prepare.add_argument("--data", type=Path, help="an image folder (labeled/<class>/, unlabeled/, optional test/<class>/), "
                         "an .npz (x_labeled, y_labeled, x_unlabeled[, x_test, y_test] or x_train, y_train, x_test, "
                         "y_test), or a folder of MNIST-format IDX files; default: download MNIST")
    prepare.add_argument("--download-dir", type=Path, default=Path.home() / ".cache" / "sgan" / "mnist",
                         help="where the MNIST download is kept (without --data)")
    prepare.add_argument("--labels", type=int, help="fully labeled (benchmark) data only: labeled examples to keep, "
                         f"balanced over classes (default {data.DEFAULT_LABELS})")
    prepare.add_argument("--seed", type=int, default=0, help="fixes the labeled subset, weights and data order")
    prepare.add_argument("--image-size", type=_image_size, help="HxW for image folders (default: the labeled images' "
                         "most common size, scaled down to a longer side of 32 pixels with its aspect kept)")
    prepare.add_argument("--channels", type=int, choices=(1, 3), help="1 (grayscale) or 3 (RGB) for image folders "
                                                                     "(default: 1 if all labeled images are gray)")
    prepare.add_argument("--cache-dir", type=Path, help="decoded image folders (default $SGAN_CACHE_DIR or "
                                                        "~/.cache/sgan/datasets)")
    prepare.add_argument("--skip-bad", action="store_true", help="leave out the labeled and test files that cannot "
                         "be used (listed in skipped.json), instead of naming them all and stopping")
    prepare.add_argument("--run-dir", type=Path, required=True, help="the run folder: its manifest.json is written "
                         "here, and `sgan train`, `evaluate` and `export` take the same folder")
    prepare.set_defaults(func=cmd_prepare)

    train = commands.add_parser("train", help="train the SGAN (resumes from the latest checkpoint)")
    options.add_arguments(train)
    train.add_argument("--workers", type=int, help="Horovod workers on this host (horovodrun); with --hosts, must "
                                                   "equal the slots")
    nodes = train.add_mutually_exclusive_group()
    nodes.add_argument("--hosts", help="nodes with slots, e.g. node1:4,node2:4 (8 workers; passed to horovodrun -H)")
    nodes.add_argument("--hostfile", type=Path, help="nodes in a file, `HOST slots=N` a line (the Kubeflow MPI "
                       "Operator's /etc/mpi/hostfile); the same as --hosts")
    train.add_argument("--ssh-port", type=int, help="the nodes' ssh port (default 22)")
    train.add_argument("--ssh-identity-file", type=Path, help="the ssh key that reaches every node")
    train.add_argument("--network-interface", help="the interface(s) Horovod uses between nodes, e.g. eth0")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("evaluate", help="metrics, baseline, confusion matrix and sample images")
    evaluate.add_argument("--run-dir", type=Path, required=True, help="a trained run folder")
    evaluate.add_argument("--no-baseline", action="store_true", help="skip the supervised-only baseline")
    evaluate.set_defaults(func=cmd_evaluate)

    export = commands.add_parser("export", help="ONNX classifier (verified against TF) and its INT8 edge model")
    export.add_argument("--run-dir", type=Path, required=True, help="an evaluated run folder")
    export.set_defaults(func=cmd_export)

    predict = commands.add_parser("predict", help="classify images (files or folders of PNG, JPEG, WebP, AVIF or HEIC, any "
                                                  "size), "
                                                  ".npy arrays or IDX files")
    predict.add_argument("model", type=Path, help="an .onnx file (model.onnx or model.int8.onnx)")
    predict.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders, .npy arrays "
                         "or IDX files")
    predict.add_argument("--json", action="store_true", help="one JSON list instead of one line per image")
    predict.add_argument("--csv", type=Path, help="write path,label,probability,entropy for every image here")
    predict.add_argument("--uncertain", type=int, metavar="K", help="list the K images the model is least sure about "
                                                                     "(highest entropy), and draw them")
    predict.add_argument("--grid", type=Path, help="where --uncertain draws (default: beside --csv, or uncertain.png)")
    predict.set_defaults(func=cmd_predict)

    models = commands.add_parser("models", help="the published versions: list, show, promote, rollback")
    root = argparse.ArgumentParser(add_help=False)  # --models-root before or after the action
    root.add_argument("--models-root", type=Path, default=argparse.SUPPRESS,
                      help=f"the flow's OUTPUT_ROOT/models (default {MODELS_ROOT})")
    models.add_argument("--models-root", type=Path, default=MODELS_ROOT, help=argparse.SUPPRESS)
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[root], help="every version: date, test accuracy, baseline, labels, "
                       "decision; * is latest")
    actions.add_parser("show", parents=[root], help="a version's model card").add_argument("version")
    actions.add_parser("promote", parents=[root], help="point latest to a version").add_argument("version")
    actions.add_parser("rollback", parents=[root], help="point latest back to the version before the last promotion")
    models.set_defaults(func=cmd_models)

    serve = commands.add_parser("serve", help="HTTP prediction service (v1 and KServe v2 APIs, Prometheus metrics)")
    add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    label = commands.add_parser("label", help="a web page on 127.0.0.1 for labeling the unlabeled images the model is "
                                              "least sure of, and retraining from them")
    label.add_argument("folder", type=Path, help="an image folder: labeled/<class>/ and unlabeled/")
    label.add_argument("--model", type=Path, default=MODELS_ROOT,
                       help="a models root (what `latest` serves; retraining publishes beside it) or an .onnx file")
    label.add_argument("--port", type=int, default=8001, help="the page's port on 127.0.0.1")
    label.add_argument("--output-root", type=Path, default=Path("runs/pipeline"),
                       help="with an .onnx --model: where retraining runs and publishes (its models/)")
    label.add_argument("--iterations", type=int, help="for retraining (default: the flow's, 15 minutes on your images)")
    label.add_argument("--workers", type=int, help="for retraining")
    label.add_argument("--accuracy-gate", type=float, help="for retraining, as for `sgan pipeline`")
    label.add_argument("--retrain", action="store_true", help="retrain now from the labels in FOLDER, warm-started "
                       "from the model `latest` serves, and say how it compares (no page)")
    label.set_defaults(func=cmd_label)

    pipeline = commands.add_parser("pipeline", help="the whole pipeline as a Prefect flow run (embedded Prefect "
                                                    "unless PREFECT_API_URL points to a server)")
    pipeline.add_argument("--preset", choices=PRESETS, help=PRESET_HELP)
    pipeline.add_argument("--labels", type=int, help="as for `sgan prepare`: fully labeled (benchmark) data only "
                          f"(default {data.DEFAULT_LABELS})")
    pipeline.add_argument("--seed", type=int, help="fixes the labeled subset, weights and data order (default 0)")
    pipeline.add_argument("--workers", type=int, help="Horovod workers on this host (default 2 with Horovod "
                          "installed, else 1)")
    nodes = pipeline.add_mutually_exclusive_group()
    nodes.add_argument("--hosts", help="nodes with slots, e.g. node1:4,node2:4 (the worker count is their sum)")
    nodes.add_argument("--hostfile", type=Path, help="as for `sgan train`: `HOST slots=N` a line (the Kubeflow "
                       "MPI Operator's /etc/mpi/hostfile)")
    pipeline.add_argument("--ssh-port", type=int, help="the nodes' ssh port (default 22)")
    pipeline.add_argument("--ssh-identity-file", help="the ssh key that reaches every node")
    pipeline.add_argument("--network-interface", help="the interface(s) Horovod uses between nodes, e.g. eth0")
    pipeline.add_argument("--batch-size", type=int, help="per worker, as for `sgan train`")
    pipeline.add_argument("--precision", choices=PRECISIONS, help="as for `sgan train` (default fp32)")
    pipeline.add_argument("--architecture", choices=ARCHITECTURES, help="as for `sgan train`")
    pipeline.add_argument("--augment", choices=AUGMENTATIONS, help="as for `sgan train`")
    pipeline.add_argument("--iterations", type=int, help="with --time-budget, the most it may run")
    pipeline.add_argument("--time-budget", type=float, metavar="SECONDS", help="as for `sgan train`")
    pipeline.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default: the "
                          "preset's); a killed run resumes from the last one")
    pipeline.add_argument("--data", type=Path, help="as for `sgan prepare` (default: download MNIST)")
    pipeline.add_argument("--image-size", type=_image_size, help="HxW, for image folders")
    pipeline.add_argument("--channels", type=int, choices=(1, 3), help="for image folders")
    pipeline.add_argument("--skip-bad", action="store_true", default=None, help="as for `sgan prepare`")
    pipeline.add_argument("--accuracy-gate", type=float, help="promote to `latest` only at or above this test "
                          "accuracy (0: promote unevaluated models too); default: 0.9 on benchmark data, and on an "
                          "image folder: significantly better than the supervised-only baseline on the test images")
    pipeline.add_argument("--tolerance", type=float, help="promote a model up to this much less accurate than the one "
                                                          "`latest` serves, on the same test images (default 0: not "
                                                          "significantly worse, by McNemar's test)")
    pipeline.add_argument("--force-promotion", action="store_true", default=None,
                          help="promote even with other class names or input shape than the model `latest` serves")
    pipeline.add_argument("--allow-test-leaks", action="store_true", default=None,
                          help="promote even if test images also appear in the training data")
    pipeline.add_argument("--warm-start", action="store_true", default=None,
                          help="start from the weights of the model `latest` serves, if it has the same classes and "
                               "image shape (else from scratch)")
    pipeline.add_argument("--output-root", help="where runs (OUTPUT_ROOT/runs) and published versions (the models "
                          "root, OUTPUT_ROOT/models) go (default runs/pipeline)")
    pipeline.set_defaults(func=cmd_pipeline)
    _help_everywhere(parser)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return exit_code(lambda: args.func(args))
