"""`sgan label`: the labeling page in a real headless Chromium (Selenium), against the real server and files, and
its JSON API's refusals over real HTTP. The model comes from a real flow run; retraining is another one."""

import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import SGAN, flow_env, free_port, write_image_folder

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CLASSES = ("cat", "dog", "frog")


def _labeled(folder: Path) -> dict:
    return {name: sorted(p.name for p in (folder / "labeled" / name).iterdir()) for name in CLASSES}


@pytest.fixture(scope="module")
def published(tmp_path_factory, prefect_api):
    """An image folder (2 labeled images per class) and v0001 trained on it by `sgan pipeline`; flow runs (the
    page's retrain too) report to the test run's Prefect server."""
    tmp = tmp_path_factory.mktemp("label")
    folder = write_image_folder(tmp / "data", classes=CLASSES, labeled_per_class=2, unlabeled=30, test_per_class=4,
                                formats=("heic", "webp", "png", "jpg"))  # as phones and the web save them
    result = subprocess.run([SGAN, "pipeline", "--data", folder, "--iterations", "40", "--workers", "1",
                             "--batch-size", "8", "--accuracy-gate", "0", "--output-root", tmp / "out"],
                            capture_output=True, text=True, env=_env(tmp, prefect_api), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp, folder


def _env(tmp: Path, api: str) -> dict:
    return flow_env(tmp / "prefect-home", PREFECT_API_URL=api)


@pytest.fixture
def server(published, prefect_api):
    """`sgan label FOLDER --model MODELS_ROOT` in its own process; yields its URL."""
    tmp, folder = published
    port = free_port()
    process = subprocess.Popen([SGAN, "label", folder, "--model", tmp / "out" / "models", "--port", str(port),
                                "--iterations", "40", "--workers", "1", "--accuracy-gate", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=_env(tmp, prefect_api))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert process.poll() is None and time.time() < deadline, process.stdout.read() if process.poll() else ""
        try:
            httpx.get(f"{url}/api/state", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_the_api_refuses_what_it_cannot_do_with_a_json_4xx_and_moves_nothing(server, published):
    _, folder = published
    before = _labeled(folder), sorted(p.name for p in (folder / "unlabeled").rglob("*.*"))
    first = httpx.get(f"{server}/api/batch?size=1").json()["images"][0]["file"]
    for path, body, status in [("label", {"file": "no/such.png", "class": "cat"}, 404),
                               ("label", {"file": first, "class": "horse"}, 422),
                               ("label", {"file": "../labeled/cat/cat0.png", "class": "dog"}, 403),
                               ("label", {"file": "../../../etc/passwd", "class": "dog"}, 403),
                               ("label", {"file": first}, 400),
                               ("skip", {"file": "no/such.png"}, 404),
                               ("undo", {}, 409)]:
        response = httpx.post(f"{server}/api/{path}", json=body)
        assert response.status_code == status and response.json()["error"], (path, body, response.text)
    assert httpx.post(f"{server}/api/label", content=b"{not json").status_code == 400
    assert httpx.get(f"{server}/api/image", params={"file": "../test/cat/t0.png"}).status_code == 403
    assert httpx.get(f"{server}/api/image", params={"file": first}).headers["content-type"].startswith("image/")
    heic = next(p for p in (folder / "unlabeled").rglob("*.heic")).relative_to(folder / "unlabeled").as_posix()
    shown = httpx.get(f"{server}/api/image", params={"file": heic})  # browsers but Safari cannot show HEIC
    assert shown.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(shown.content)).size == (16, 16)
    assert (_labeled(folder), sorted(p.name for p in (folder / "unlabeled").rglob("*.*"))) == before


def test_bad_arguments_are_one_line_and_exit_2(server, published, prefect_api, tmp_path):
    tmp, folder = published
    models = tmp / "out" / "models"
    port = server.rsplit(":", 1)[1]
    for args, message in [([tmp_path / "nowhere", "--model", models], "not an image folder"),
                          ([folder, "--model", tmp_path / "none.onnx"], "none.onnx"),
                          ([folder, "--model", tmp / "out"], "a models root is the flow's OUTPUT_ROOT/models"),
                          ([folder, "--model", models, "--port", port], f"127.0.0.1:{port}: "),
                          ([folder, "--model", models, "--port", "80000"], "--port 80000: must be between 1 and 65535")]:
        result = subprocess.run([SGAN, "label", *map(str, args)], capture_output=True, text=True, timeout=120,
                                env=_env(tmp, prefect_api))
        assert result.returncode == 2 and result.stderr.startswith("sgan: error: "), (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no chromium and chromedriver (make test installs "
                    "Debian's chromium and chromium-driver as root)")
def test_label_undo_race_two_tabs_and_retrain_in_a_real_browser(server, published, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    tmp, folder = published
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    wait = WebDriverWait(browser, 30, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    def current(*answered: str):
        """The highlighted card (its file, the model's guess, the element), once the page shows one that is none of
        `answered`: the page re-renders after each answer."""
        def shown(b):
            card = b.find_element(By.CSS_SELECTOR, ".card.current")
            file, guess = card.get_attribute("data-file"), card.find_element(By.CSS_SELECTOR, ".guess b").text
            return (file, guess, card) if file not in answered else None
        return wait.until(shown)

    def text(element_id: str) -> str:
        return wait.until(lambda b: b.find_element(By.ID, element_id).text)

    def shown_counts() -> dict:
        return {e.get_attribute("data-class"): int(e.text) for e in browser.find_elements(By.CSS_SELECTOR, ".count")}

    def is_unlabeled(file: str) -> bool:
        return (folder / "unlabeled" / file).is_file()

    try:
        browser.get(server)
        start = {name: len(files) for name, files in _labeled(folder).items()}
        wait.until(lambda b: shown_counts() == start)

        # Enter confirms the model's guess for the highlighted image: the file moves into labeled/<guess>/.
        first, guess, _ = current()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        wait.until(lambda b: not is_unlabeled(first))
        assert Path(first).name in _labeled(folder)[guess]

        # A click on another class labels the next one with that class.
        second, _, card = current(first)
        other = card.find_elements(By.CSS_SELECTOR, "button.class")[0]
        chosen = other.text
        other.click()
        wait.until(lambda b: not is_unlabeled(second))
        assert Path(second).name in _labeled(folder)[chosen]

        # s skips (nothing moves), u undoes the last answer (the second image goes back where it was).
        third = current(first, second)[0]
        browser.find_element(By.TAG_NAME, "body").send_keys("s")
        current(first, second, third)
        assert is_unlabeled(third)
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda b: is_unlabeled(second))
        assert Path(second).name not in _labeled(folder)[chosen]
        expected = {**start, guess: start[guess] + 1}
        wait.until(lambda b: shown_counts() == expected)
        assert {name: len(files) for name, files in _labeled(folder).items()} == expected

        # Two tabs answer the same image: it moves once, and the second tab is told.
        first_tab = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(server)
        contested = current()[0]
        browser.switch_to.window(first_tab)
        browser.refresh()
        assert current()[0] == contested
        current()[2].find_element(By.CSS_SELECTOR, "button.confirm").click()
        wait.until(lambda b: not is_unlabeled(contested))
        browser.switch_to.window(browser.window_handles[1])
        current()[2].find_element(By.CSS_SELECTOR, "button.class").click()
        wait.until(lambda b: "already labeled" in text("message"))
        copies = [name for name, files in _labeled(folder).items() if Path(contested).name in files]
        assert len(copies) == 1
        labels = sum(len(files) for files in _labeled(folder).values())

        # Retrain from the page: a warm-started flow run publishes v0002, and the page compares it with v0001.
        browser.find_element(By.ID, "retrain").click()
        WebDriverWait(browser, 600, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda b: b.find_elements(By.ID, "new-version"))
        assert text("new-version") == "v0002" and text("promoted") == "promoted"
        version = tmp / "out" / "models" / "v0002"
        assert json.loads((version / "manifest.json").read_text())["labels"] == labels
        assert os.readlink(tmp / "out" / "models" / "latest") == "v0002"
        metrics = json.loads((version / "metrics.json").read_text())
        assert text("new-accuracy") == f"{100 * metrics['test_accuracy']:.2f}%"
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(tmp_path / "label.png"))
    finally:
        browser.quit()


@pytest.mark.parametrize("where", ["a root without latest", "a version folder"])
def test_the_page_ranks_by_a_first_model_that_was_not_promoted(published, prefect_api, tmp_path, where):
    """After a first flow run whose model was published but not promoted, the next command still works."""
    tmp, folder = published
    models = tmp_path / "models"
    shutil.copytree(tmp / "out" / "models" / "v0001", models / "v0001")  # no `latest`
    port = free_port()
    process = subprocess.Popen([SGAN, "label", folder, "--model", models if where == "a root without latest"
                                else models / "v0001", "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=_env(tmp, prefect_api))
    try:
        deadline = time.time() + 120
        while True:
            assert process.poll() is None and time.time() < deadline, process.stdout.read() if process.poll() else ""
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.3)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "ranked by v0001" in output, output
    assert ("no version is promoted to `latest` yet; using the newest, v0001" in output) == (where != "a version folder")
    assert state["counts"], state
