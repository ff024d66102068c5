"""`sgan serve`: the HTTP service on uvicorn, in one or several worker processes.

    python -m deploy.serve MODEL.onnx [--host 0.0.0.0] [--port 8000] [--processes 2]
    python -m deploy.serve MODELS_ROOT ...    serves what MODELS_ROOT/latest points to, and follows it
    python -m deploy.serve MODELS_ROOT/v0003  serves that version

Runs without TensorFlow (the slim image, deploy/Dockerfile, starts it this way). Workers share the port;
Prometheus samples from all of them are summed at /metrics through a per-server multiprocess folder.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sgan.errors import UserError


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("model", type=Path, help="an .onnx file, a version folder (MODELS_ROOT/v0003), or a models "
                        "root (as runs/pipeline/models): the version `latest` points to is served, and followed when "
                        "it moves (the newest version while none is promoted)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="the port to listen on")
    parser.add_argument("--processes", type=int, default=1, help="server processes sharing the port (one per core is "
                        "a good start)")
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)  # the old name of --processes
    parser.add_argument("--max-batch", type=int, default=256, help="images per request")
    parser.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="larger requests get 413")
    parser.add_argument("--model-name", default="sgan", help="the model's name in the v2 (KServe) API")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="how often each process looks where a models root's `latest` points")
    parser.add_argument("--int8", action="store_true", help="with a models root: serve each version's INT8 model "
                        "(faster on one thread per process, within 0.5 points of the float model; docs/serving.md)")


def check_port(host: str, port: int):
    """A port outside 1-65535, or one something else listens on, is one line now rather than uvicorn's error
    after the model has loaded."""
    import socket

    if not 1 <= port <= 65535:
        raise UserError(f"--port {port}: must be between 1 and 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UserError(f"{host}:{port}: {e.strerror}; choose another --port") from None


def announce(source: Path):
    """One line when a models root has no `latest` yet: which version is used instead."""
    from deploy import registry

    if not source.is_dir() or registry.is_version(source):
        return
    version, promoted = registry.served(source)
    if not promoted:
        print(f"{source}: no version is promoted to `latest` yet; using the newest, {version} "
              "(`latest` is followed once set)", file=sys.stderr)


def run(args):
    if args.workers is not None:
        print("sgan serve: --workers is now --processes (--workers means Horovod workers elsewhere)", file=sys.stderr)
        args.processes = args.workers
    if args.processes < 1 or args.max_batch < 1 or args.max_body_bytes < 1:
        raise UserError("--processes, --max-batch and --max-body-bytes must be at least 1")
    if not args.poll_seconds > 0:
        raise UserError("--poll-seconds must be above 0")
    if args.int8 and not args.model.is_dir():
        raise UserError("--int8 applies to a models root; to serve one INT8 file, name it (model.int8.onnx)")
    check_port(args.host, args.port)
    from deploy import follow

    announce(args.model)
    served = follow.load(args.model, args.max_batch, int8=args.int8)  # one line here, not a traceback per worker
    kind = "INT8" if "quantization" in served.classifier.metadata else "float"
    print(f"sgan serve: {served.version}, {kind} model {served.path}, on http://{args.host}:{args.port}",
          file=sys.stderr)
    config = {"model_path": str(args.model.resolve()), "max_batch": args.max_batch,
              "max_body_bytes": args.max_body_bytes, "model_name": args.model_name,
              "poll_seconds": args.poll_seconds, "int8": args.int8}
    metrics_dir = tempfile.mkdtemp(prefix="sgan-metrics-")
    os.environ.update({"SGAN_SERVE_CONFIG": json.dumps(config), "PROMETHEUS_MULTIPROC_DIR": metrics_dir})
    import uvicorn

    try:
        uvicorn.run("deploy.server:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.processes, log_level="warning", access_log=False)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except UserError as e:
        print(f"sgan serve: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
