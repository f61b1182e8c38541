"""The web page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium): ask and see sources and the streamed answer, open a citation's passage,
upload a file and find it, give feedback and see it in the operator view; document and model text holding ``<script>``,
``<img onerror>`` and ``javascript:`` links stays inert text."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from knowbase.config import Settings  # noqa: E402
from knowbase.knowledge.base import KnowledgeBase  # noqa: E402
from knowbase.server import ServerConfig, create_app  # noqa: E402
from server_helpers import running  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = ("The HR portal badge is <img src=x onerror=\"window.__pwned=1\"> and <script>window.__pwned=2</script> "
           "and [portal](javascript:window.__pwned=3).")
DOC = "Employees get 25 days of paid leave per year.\n\n" + HOSTILE + "\n"
ANSWER = "Employees get 25 days of paid leave per year [1]. " + HOSTILE + " [1]"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                                reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs them)")


@pytest.fixture
def browser() -> Any:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def url(knowbase_home: Path, tmp_path: Path) -> Any:
    settings = Settings.load(embedder="fake", model=f"fake:{ANSWER}")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.txt").write_text(DOC, encoding="utf-8")
    with KnowledgeBase.create("handbook", settings=settings) as kb:
        kb.ingest([docs])
    with running(create_app(settings, ServerConfig())) as base:
        yield base


def wait_text(driver: Any, element_id: str, text: str, timeout: float = 30) -> None:
    try:
        WebDriverWait(driver, timeout).until(lambda d: text in d.find_element(By.ID, element_id).text)
    except Exception as exc:  # say what the page shows instead
        shown = driver.find_element(By.ID, element_id).text
        raise AssertionError(f"#{element_id} shows {shown!r}, not {text!r}; console: {_console(driver)}") from exc


def _console(driver: Any) -> list[str]:
    try:
        return [e.get("message", "") for e in driver.get_log("browser")]
    except Exception:  # not every driver keeps the log
        return []


def test_ask_cite_upload_feedback_and_inert_text(browser: Any, url: str, tmp_path: Path) -> None:
    import httpx

    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#kb option"))
    browser.find_element(By.ID, "question").send_keys("How many days of paid leave do employees get per year?")
    browser.find_element(By.CSS_SELECTOR, "#ask-form button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "feedback").is_displayed())
    assert browser.find_element(By.ID, "status").text in ("Done", "Checked answer (revised):")
    answer = browser.find_element(By.ID, "answer")
    assert "25 days of paid leave" in answer.text and "<script>window.__pwned=2</script>" in answer.text
    assert "[portal](javascript:" in answer.text
    assert browser.find_elements(By.CSS_SELECTOR, "#answer img, #answer script, #answer a, #sources a") == []
    sources = browser.find_element(By.ID, "sources").text
    assert "handbook.txt" in sources

    # a citation opens its passage, the supporting sentence highlighted, as text
    answer.find_element(By.CSS_SELECTOR, "button.cite").click()
    panel = browser.find_element(By.ID, "passage")
    WebDriverWait(browser, 10).until(lambda d: "<img src=x" in panel.text)
    assert browser.find_elements(By.CSS_SELECTOR, "#passage img, #passage script") == []
    assert "25 days" in panel.find_element(By.TAG_NAME, "mark").text
    assert browser.execute_script("return window.__pwned === undefined") is True

    # feedback on the answer lands on its trace
    browser.find_element(By.ID, "up").click()
    wait_text(browser, "feedback-status", "Thank you")
    [row] = httpx.get(url + "/api/feedback").json()["data"]
    assert row["rating"] == "up" and row["kb"] == "handbook"

    # the operator view shows the ask, its feedback and the model call
    browser.find_element(By.ID, "load-metrics").click()
    WebDriverWait(browser, 20).until(lambda d: "handbook" in d.find_element(By.ID, "kb-metrics").text)
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#kb-metrics tr:nth-child(2) td")]
    assert cells[1:4] == ["handbook", "1", "0"] and cells[7:] == ["1", "0"]  # kb, asks, abstained ... up, down
    assert browser.find_elements(By.CSS_SELECTOR, "#kb-chart svg rect")
    assert "fake:fixed" in browser.find_element(By.ID, "model-metrics").text

    # upload a file, see it ingested, find it
    note = tmp_path / "parking.md"
    note.write_text("# Parking\n\nThe car park opens at 6 am for staff with a badge.\n", encoding="utf-8")
    browser.find_element(By.ID, "files").send_keys(str(note))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button").click()
    wait_text(browser, "upload-status", "Ingested: parking.md")
    hits = httpx.post(url + "/api/kbs/handbook/search", json={"query": "car park badge", "k": 1}).json()["hits"]
    assert hits[0]["path"].endswith("parking.md")
    assert browser.execute_script("return window.__pwned === undefined") is True
