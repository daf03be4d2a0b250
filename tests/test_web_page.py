"""The web page in headless Chromium (Playwright): search, animated stick figures, more like
this, a screenshot for people to look at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from service_helpers import LiveServer, service_index  # noqa: F401 - fixture

CHROMIUM = os.environ.get("GAITSEARCH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = Path(
    os.environ.get("GAITSEARCH_ARTIFACTS", Path(__file__).resolve().parent / "artifacts")
)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not found at {CHROMIUM} (install it: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(service_index, text_encoder):  # noqa: F811
    with LiveServer(service_index.app(text_encoder)) as live:
        yield live


def _frames(page) -> list[int]:
    return page.eval_on_selector_all(
        ".result canvas", "cs => cs.map(c => Number(c.dataset.frame ?? -1))"
    )


def _pixels(page) -> str:
    return page.eval_on_selector(".result canvas", "c => c.toDataURL()")


@pytest.mark.slow
def test_search_animate_more_like_this_and_screenshot(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    assert page.locator(".example").count() >= 3  # example queries are offered

    page.fill("#query", "woman in heels walking briskly")
    page.select_option("#k", "6")
    page.click("#search-button")
    page.wait_for_function(
        "() => { const cs = [...document.querySelectorAll('.result canvas')];"
        " return cs.length === 6 && cs.every(c => c.dataset.frame !== undefined); }",
        timeout=20_000,
    )
    assert page.locator(".result").count() == 6
    assert "walks for" in page.inner_text("#status")
    first_card = page.inner_text(".result")
    assert "#1" in first_card and "more like this" in first_card and "view:" in first_card

    # The figures animate: frame counters advance and the canvas pixels change.
    # (Polled, not slept: on a busy machine the browser may draw late.)
    before_frames, before_pixels = _frames(page), _pixels(page)
    page.wait_for_function(
        "prev => JSON.stringify([...document.querySelectorAll('.result canvas')]"
        ".map(c => Number(c.dataset.frame ?? -1))) !== JSON.stringify(prev)",
        arg=before_frames,
        timeout=15_000,
    )
    assert _frames(page) != before_frames
    for _ in range(50):
        if _pixels(page) != before_pixels:
            break
        page.wait_for_timeout(100)
    assert _pixels(page) != before_pixels

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web_search.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")

    # "More like this" on the second result: a by-example search for that walk.
    second_id = page.get_attribute(".result:nth-child(2)", "data-id")
    page.click(".result:nth-child(2) .more")
    page.wait_for_function(
        # the summary after rendering ("6 walks like ID in 3.1 ms"), not the "Finding walks
        # like ID…" shown while the request is in flight (the old results are still drawn)
        "id => document.querySelector('#status').textContent.includes('walks like ' + id + ' in ')",
        arg=second_id,
        timeout=20_000,
    )
    page.wait_for_selector(".result canvas[data-frame]", timeout=20_000)
    ids = page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.id)")
    assert ids and second_id not in ids
    page.screenshot(path=str(ARTIFACTS / "web_more_like_this.png"), full_page=True)
    assert not errors, errors
    page.close()


@pytest.mark.slow
def test_errors_and_empty_input_are_shown_clearly(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/")
    page.evaluate("document.querySelector('#query').removeAttribute('required')")
    page.fill("#query", "   ")
    page.click("#search-button")
    assert "Type a description" in page.inner_text("#status")
    page.evaluate("document.querySelector('#query').removeAttribute('maxlength')")
    page.fill("#query", "x" * 1200)
    page.click("#search-button")
    page.wait_for_selector("#status.error", timeout=10_000)
    assert "422" in page.inner_text("#status") and "1000" in page.inner_text("#status")
    page.close()


UNDERSTOOD = {
    "grounded": True,
    "terms": [
        {"name": "gender", "value": "female", "confidence": 0.95},
        {"name": "pace", "value": "brisk", "confidence": 0.96},
        {"name": "view", "value": "side", "confidence": 0.9},
    ],
    "ignored": ["red", "coat"],
}
NOT_GROUNDED = {
    "grounded": False,
    "terms": [],
    "ignored": ["quarterly", "earnings"],
    "detail": "This query names nothing this index can search by. Describe how a person "
    "walks or looks by: gender (male, female); pace (slow, normal, brisk, running).",
}


def _answer_with(page, understood: dict) -> None:
    """Serve /search from the real server with ``understood`` set as given (the page is
    tested on the contract, whatever checkpoint the test index uses)."""
    import json

    def handle(route):
        response = route.fetch()
        body = response.json()
        body["understood"] = understood
        if not understood["grounded"]:
            body["results"] = []
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/search?*", handle)


@pytest.mark.slow
def test_interpretation_chips_and_not_grounded_message(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    _answer_with(page, UNDERSTOOD)
    page.fill("#query", "a woman in a red coat walking fast, side view")
    page.select_option("#k", "6")
    page.click("#search-button")
    page.wait_for_selector(".result canvas[data-frame]", timeout=20_000)
    chips = page.inner_text("#understood")
    assert "understood:" in chips and "female" in chips and "brisk" in chips
    assert "ignored:" in chips and "red coat" in chips
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_understood.png"), full_page=True)

    page.unroute("**/search?*")
    _answer_with(page, NOT_GROUNDED)
    page.fill("#query", "the quarterly earnings beat expectations")
    page.click("#search-button")
    page.wait_for_selector("#understood.not-grounded", timeout=20_000)
    assert page.locator(".result").count() == 0
    assert "names nothing" in page.inner_text("#understood")
    page.screenshot(path=str(ARTIFACTS / "web_not_grounded.png"), full_page=True)

    # An example in the message runs that search.
    page.unroute("**/search?*")
    _answer_with(page, UNDERSTOOD)
    example = page.locator("#understood .example").first
    text = example.inner_text()
    example.click()
    page.wait_for_selector(".result canvas[data-frame]", timeout=20_000)
    assert page.input_value("#query") == text
    assert "not-grounded" not in (page.get_attribute("#understood", "class") or "")
    assert not errors, errors
    page.close()
