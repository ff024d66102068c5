"""Inference speed: TensorFlow (tf.function) vs ONNX float vs ONNX INT8, and the HTTP service.

    python benchmarks/inference.py --run-dir runs/mnist-seed [--requests 500]

Needs a trained run (`make run`); exports it first if model.onnx is missing. Prints one JSON line:
batch-1 latency p50/p99 (microseconds), batch-256 throughput (images/s), ONNX/TF speed ratios, and batch-1
HTTP requests per second with p99 latency against a real `sgan serve` process on loopback.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def latencies_us(predict, image, repeats: int) -> np.ndarray:
    for _ in range(20):
        predict(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - started)
    return np.array(times) * 1e6


def throughput(predict, batch, repeats: int) -> float:
    predict(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        predict(batch)
    return len(batch) * repeats / (time.perf_counter() - started)


def http_figures(model: Path, image: np.ndarray, requests: int) -> dict:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", str(model), "--port", str(port)])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(150):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            body = {"images": image.tolist()}
            for _ in range(20):
                client.post("/v1/predict", json=body).raise_for_status()
            times = []
            started = time.perf_counter()
            for _ in range(requests):
                t = time.perf_counter()
                client.post("/v1/predict", json=body).raise_for_status()
                times.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"http_requests_per_s": round(requests / elapsed, 1),
            "http_p99_ms": round(float(np.percentile(times, 99)) * 1000, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/mnist-seed"))
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    from deploy.export import classifier_function, export_run
    from deploy.runtime import Classifier
    from sgan.run import RunDir

    run = RunDir(args.run_dir)
    if not (run / "model.onnx").exists():
        export_run(args.run_dir)
    dataset = run.dataset()
    image, batch = dataset.x_test[:1], dataset.x_test[:256]
    tf_classify = classifier_function(run.model("discriminator"), dataset.image_shape)
    engines = {"tf": lambda x: tf_classify(x)["class"].numpy(),
               "onnx": Classifier(run / "model.onnx").predict}
    if (run / "model.int8.onnx").exists():
        engines["onnx_int8"] = Classifier(run / "model.int8.onnx").predict

    figures = {}
    for name, predict in engines.items():
        times = latencies_us(predict, image, args.repeats)
        figures[f"{name}_b1_p50_us"] = round(float(np.percentile(times, 50)), 1)
        figures[f"{name}_b1_p99_us"] = round(float(np.percentile(times, 99)), 1)
        figures[f"{name}_b256_images_per_s"] = round(throughput(predict, batch, max(args.repeats // 50, 5)), 1)
    for name in [n for n in engines if n != "tf"]:
        figures[f"{name}_vs_tf_b1_speedup"] = round(figures["tf_b1_p50_us"] / figures[f"{name}_b1_p50_us"], 2)
        figures[f"{name}_vs_tf_b256_speedup"] = round(
            figures[f"{name}_b256_images_per_s"] / figures["tf_b256_images_per_s"], 2)
    figures.update(http_figures(run / "model.onnx", image, args.requests))
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
