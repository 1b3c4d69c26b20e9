"""The web UI in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

`cycleresearcher serve` runs in a subprocess on a free 127.0.0.1 port with the `fake` backend scripted to
write a complete review set slowly (so the page shows live progress first). The browser uploads a paper,
waits for the reviews table that the page's own script brings in when the job ends, checks the decision and a
rating, then opens a run and a paper. Screenshots go to the test's tmp dir; with
CYCLERESEARCHER_SCREENSHOTS=DIR they are also written there (the README's docs/screenshots):

    CYCLERESEARCHER_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest -q tests/test_web_browser.py
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS_ENV = "CYCLERESEARCHER_SCREENSHOTS"
TESTS = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.skipif(not CHROMIUM or not CHROMEDRIVER,
                       reason="Chromium is not installed (apt-get install -y chromium chromium-driver; CI does)"),
]

REVIEW = """## Summary

The paper proposes sparse routing for tiny transformers: a learned router sends each token to two of eight
small experts, and the authors report accuracy on three small benchmarks.

## Soundness

{s}

## Presentation

3

## Contribution

{c}

## Strengths

- A clear, simple method that fits small models.
- The router's cost is measured, not assumed.

## Weaknesses

- Only toy benchmarks; no comparison with dense models of equal compute.
- The results are described as simulated, so the claims cannot be checked.

## Questions

How does accuracy change with the number of experts?

## Flag For Ethics Review

No ethics review needed.

## Rating

{rating}

## Confidence

{conf}
"""

# Run in the server's process: the `fake` backend, scripted to write four reviews (ratings 6, 8, 5, 6), a
# meta-review and Accept once the test lets it (so the page is seen in progress first).
SERVER = """
import os, sys, time
from cycleresearcher.backends import register_backend
from cycleresearcher.backends.fake import FakeBackend
from cycleresearcher.cli import main
sys.path.insert(0, {tests!r})
from test_web_browser import review_set_text

def respond(request, i):
    # Hold the reviews back until the test has seen the page in progress (the file appears), at most 60 s.
    deadline = time.monotonic() + 60
    while not os.path.exists({release!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return review_set_text()

register_backend("fake", lambda rest: FakeBackend(responder=respond))
sys.argv = ["cycleresearcher", "serve", "--port", "{port}", "--backend", "fake", "--runs", {runs!r}]
main()
"""


def review_set_text() -> str:
    reviews = [REVIEW.format(s=s, c=c, rating=r, conf=f) for s, c, r, f in
               ((3, 3, 6, 4), (4, 3, 8, 3), (2, 2, 5, 4), (3, 3, 6, 3))]
    meta = ("## Meta Review\n\nThe reviewers agree the method is simple and clearly presented; they ask for dense "
            "baselines of equal compute and real, measured results. On balance the paper is slightly above the "
            "threshold.\n\n## Paper Decision\n\nAccept")
    return "\n\n**********\n\n".join(reviews + [meta])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"serve did not answer within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def server(tmp_path):
    from test_web_runs import write_run

    runs = tmp_path / "runs"
    runs.mkdir()
    write_run(runs, "demo", rounds=3)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    release = tmp_path / "release-the-reviews"
    script = SERVER.format(tests=str(TESTS), release=str(release), port=port, runs=str(runs))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, proc, log)
        yield url, release
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def browser(tmp_path, monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,900", "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "driver.log")),
                              options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver, tmp_path: Path, name: str, height: int = 900) -> Path:
    """The viewport as a PNG in tmp_path; also a palette PNG in $CYCLERESEARCHER_SCREENSHOTS when it is set."""
    driver.set_window_size(1200, height)
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot for {name}"
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        from PIL import Image

        from cycleresearcher.io import write_bytes_atomic

        image = Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        write_bytes_atomic(Path(target) / f"{name}.png", buffer.getvalue())
    return path


def test_review_a_paper_and_browse_a_run_in_chromium(server, browser, tmp_path):
    server, release = server
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from test_web import PAPER_MD

    paper = tmp_path / "sparse-routing.md"
    paper.write_text(PAPER_MD, encoding="utf-8")
    wait = WebDriverWait(browser, 60)

    browser.get(server)
    assert "Review a paper" in browser.title
    save_screenshot(browser, tmp_path, "review-form", height=760)
    browser.find_element(By.ID, "file").send_keys(str(paper))
    browser.find_element(By.ID, "submit").click()

    # The job page shows the job in progress (the scripted reviewer waits for the release file)...
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "running"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "steps"), "reviewing: 4 reviewer(s)"))
    job_url = browser.current_url
    assert "/jobs/" in job_url and not browser.find_elements(By.ID, "reviews-table")
    save_screenshot(browser, tmp_path, "review-progress", height=500)
    release.write_text("go")
    # ...and when the job ends, its server-sent events tell the page's script to reload: the reviews appear
    # without the test reloading anything.
    table = wait.until(ec.visibility_of_element_located((By.ID, "reviews-table")))
    assert browser.current_url == job_url
    assert browser.find_element(By.ID, "decision").text == "Accept"
    ratings = [row.find_elements(By.TAG_NAME, "td")[1].text for row in table.find_elements(By.CSS_SELECTOR,
                                                                                           "tbody tr")]
    assert ratings == ["6", "8", "5", "6"]
    assert browser.find_element(By.ID, "mean-rating").text == "6.25"
    assert "dense baselines" in browser.find_element(By.ID, "meta-review").text
    save_screenshot(browser, tmp_path, "review-result", height=1300)

    # A reload finds the same finished job.
    browser.refresh()
    assert wait.until(ec.visibility_of_element_located((By.ID, "decision"))).text == "Accept"

    browser.get(server + "runs")
    assert "demo" in wait.until(ec.visibility_of_element_located((By.ID, "runs-table"))).text
    save_screenshot(browser, tmp_path, "runs", height=420)

    browser.get(server + "runs/demo")
    wait.until(ec.visibility_of_element_located((By.ID, "rounds-table")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#charts svg")) >= 3
    save_screenshot(browser, tmp_path, "run", height=1100)

    browser.find_element(By.LINK_TEXT, "Round 2 High Paper").click()
    disclosure = wait.until(ec.visibility_of_element_located((By.ID, "disclosure")))
    assert "generated by a machine-learning model" in disclosure.text
    assert "SIMULATED" in browser.find_element(By.ID, "simulated").text
    save_screenshot(browser, tmp_path, "paper", height=1000)
