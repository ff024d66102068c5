"""HTTP serving throughput: batch-1 requests from 1, 16 and 64 concurrent clients against a real `sgan serve`
on loopback, for 1 and 2 server processes and both APIs (v1 JSON images, v2 flat tensors), beside
in-process onnxruntime.

    python benchmarks/serving.py --model runs/pipeline/models/latest/model.onnx [--seconds 10]

The load generator is wrk (Debian: `apt-get install wrk`), compiled, one thread, so that the client is not what
is measured; on a 2-core machine it still shares the cores with the server. Every run is bounded in time and
sends traffic to 127.0.0.1 only. Prints one JSON line.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def in_process(model: Path, image: np.ndarray, repeats: int = 3000) -> dict:
    from deploy.runtime import Classifier

    classifier = Classifier(model)
    for _ in range(100):
        classifier.predict(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.predict(image)
        times.append(time.perf_counter() - started)
    times = np.array(times) * 1e3
    return {"requests_per_s": round(repeats / times.sum() * 1e3, 1), "p50_ms": round(float(np.percentile(times, 50)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3)}


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 30).stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": round(latency["50"], 3), "p99_ms": round(latency["99"], 3),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1).strip() if socket_errors else None}


def serve(model: Path, workers: int) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "deploy.serve", str(model), "--port", str(port),
                                "--processes", str(workers)])
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become ready")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("benchmarks/serving.py needs wrk (apt-get install wrk)")

    from deploy.runtime import Classifier

    shape = Classifier(args.model).image_shape
    image = np.random.default_rng(0).integers(0, 256, (1, *shape), dtype=np.uint8)
    scratch = Path(tempfile.mkdtemp(prefix="sgan-bench-"))
    bodies = {  # the v1 nested-list body, and the v2 (KServe) flat tensor that serving platforms send
        "/v1/predict": {"images": image.tolist()},
        "/v2/models/sgan/infer": {"inputs": [{"name": "images", "shape": list(image.shape), "datatype": "UINT8",
                                              "data": image.ravel().tolist()}]},
    }
    scripts = {}
    for i, (path, body) in enumerate(bodies.items()):
        (scratch / f"body{i}.json").write_text(json.dumps(body))
        scripts[path] = scratch / f"post{i}.lua"
        scripts[path].write_text(LUA.format(body=scratch / f"body{i}.json"))

    figures = {"model": str(args.model), "cpus": os.cpu_count(), "seconds_per_run": args.seconds,
               "in_process_onnxruntime_b1": in_process(args.model, image), "http_b1": {}}
    try:
        for workers in args.workers:
            process, base = serve(args.model, workers)
            try:
                for path, script in scripts.items():
                    wrk(base + path, script, 4, 2)  # warm-up
                    for clients in args.clients:
                        figures["http_b1"][f"{path} workers={workers} clients={clients}"] = wrk(
                            base + path, script, clients, args.seconds)
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
