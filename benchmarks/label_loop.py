"""The loop people with few labels live in, through `sgan label`'s page API: train on 2 labeled images per class,
label the 40 images the model is least sure of (answered with their true class, as a careful person would), retrain
from the page, and compare the two models on the test images.

    python benchmarks/label_loop.py [--iterations 1500] [--answers 40] [--unlabeled 3000] [--screenshot PNG]

MNIST written as an image folder: `labeled/<digit>/` (2 per class, drawn with seed 0), `unlabeled/` (the next
`--unlabeled` training images) and `test/<digit>/` (the first 1,000 test images). Both flow runs train
`--iterations` on 2 Horovod workers with `--accuracy-gate 0` (the comparison is the result, not the gate's word).
One JSON line, appended to --results unless a line with the same settings is there. `--screenshot` saves the page
after retraining, as headless Chromium shows it (Debian's chromium and chromium-driver).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from photos import commit, cpu, record

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
SGAN = str(Path(sys.executable).with_name("sgan"))


def write_folder(out: Path, unlabeled: int) -> tuple[Path, dict]:
    """The folder, and each unlabeled file's true class (what the person answering knows)."""
    from PIL import Image

    from sgan import data

    dataset = data.load(MNIST)
    labeled = set(data.choose_labeled(dataset.y_train, 20, 10, seed=0).tolist())
    folder, truth = out / "mnist-folder", {}
    rest = [i for i in range(len(dataset.y_train)) if i not in labeled][:unlabeled]
    for part, indices, x, y in (("labeled", sorted(labeled), dataset.x_train, dataset.y_train),
                                ("unlabeled", rest, dataset.x_train, dataset.y_train),
                                ("test", range(1000), dataset.x_test, dataset.y_test)):
        for i in indices:
            name = f"{i:05d}.png"
            path = folder / part / ("" if part == "unlabeled" else str(y[i])) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i][..., 0]).save(path)
            if part == "unlabeled":
                truth[name] = str(y[i])
    return folder, truth


def screenshot(url: str, path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(url)
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "new-version")
                                         and len(b.find_elements(By.CSS_SELECTOR, ".card img")) > 0)
        time.sleep(1)  # the images' pixels
        browser.save_screenshot(str(path))
    finally:
        browser.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--unlabeled", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sgan-label-loop"))
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "label_loop.jsonl")
    parser.add_argument("--screenshot", type=Path, help="where to save the page after retraining (PNG)")
    args = parser.parse_args()
    settings = {"iterations": args.iterations, "answers": args.answers, "unlabeled": args.unlabeled}
    if args.results.exists() and any({k: json.loads(line).get(k) for k in settings} == settings
                                     for line in args.results.read_text().splitlines()):
        print(f"already recorded in {args.results}: {settings}")
        return
    if args.out.exists():
        sys.exit(f"{args.out} exists: remove it, or name another --out")
    folder, truth = write_folder(args.out, args.unlabeled)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(args.out / "prefect-home"),
           "SGAN_CACHE_DIR": str(args.out / "cache")}
    options = ["--iterations", str(args.iterations), "--accuracy-gate", "0"]
    started = time.perf_counter()
    first = subprocess.run([SGAN, "pipeline", "--data", str(folder), "--output-root", str(args.out / "pipeline"),
                            *options], capture_output=True, text=True, env=env)
    (args.out / "first.log").write_text(first.stdout + first.stderr)
    if first.returncode:
        sys.exit(f"the first flow run failed: {args.out / 'first.log'}")
    first_s = time.perf_counter() - started

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([SGAN, "label", str(folder), "--model", str(args.out / "pipeline" / "models"),
                               "--port", str(port), *options], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            try:
                httpx.get(f"{url}/state", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        chosen = httpx.get(f"{url}/batch", params={"size": args.answers}).json()["images"]
        guessed_right = sum(truth[Path(c["file"]).name] == c["guess"] for c in chosen)
        for c in chosen:
            httpx.post(f"{url}/label", json={"file": c["file"], "class": truth[Path(c["file"]).name]}).raise_for_status()
        started = time.perf_counter()
        httpx.post(f"{url}/retrain").raise_for_status()
        while (status := httpx.get(f"{url}/retrain").json())["state"] == "running":
            time.sleep(5)
        retrain_s = time.perf_counter() - started
        if args.screenshot:
            screenshot(f"http://127.0.0.1:{port}/", args.screenshot)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if status["state"] != "done":
        sys.exit("the retraining run failed:\n" + "\n".join(status["log"]))
    line = {**settings, "labels_before": 20, "labels_after": 20 + len(chosen),
            "test_accuracy_before": status["before"]["test_accuracy"],
            "test_accuracy_after": status["after"]["test_accuracy"], "promoted": status["promoted"],
            "model_guessed_right": guessed_right, "first_flow_s": round(first_s, 1), "retrain_s": round(retrain_s, 1),
            "test": 1000, "cpu": cpu(), "date": time.strftime("%Y-%m-%d"), "commit": commit(),
            "command": f"python benchmarks/label_loop.py --iterations {args.iterations} --answers {args.answers} "
                       f"--unlabeled {args.unlabeled}"}
    record(line, args.results)


if __name__ == "__main__":
    main()
