"""The instructor's HTML pages of a built pack, opened in Chromium with the network cut off.

Every request that is not ``file://`` (or inline ``data:``) is aborted and counted: a page must
make none, log no console error, show every figure (a loaded image with a non-zero natural
size and a visible box), and show each widget output as readable static text (the widget's
text summary, since the pages carry no widget manager). Screenshots go to
``build/browser/html-<page>.png``.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import _lab
from .conftest import NOTEBOOKS

CHAPTER_PAGES = sorted(p.stem + ".html" for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@dataclass
class OfflineVisit:
    """What an offline page load saw: blocked URLs, console errors and page errors."""

    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def visit_offline(browser, url: str) -> tuple[object, object, OfflineVisit]:
    """Open ``url`` in a new context that aborts every non-file request; return (context, page, visit)."""
    visit = OfflineVisit()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)

    def guard(route):
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            visit.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda msg: visit.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: visit.console_errors.append(f"pageerror: {exc}"))
    page.goto(url, wait_until="load")
    _lab.wait_images_loaded(page)
    return context, page, visit


def _text_of_html(markup: str) -> str:
    parser = HTMLParser()
    parts: list[str] = []
    parser.handle_data = parts.append
    parser.feed(markup)
    parser.close()
    return " ".join(" ".join(parts).split())


def widget_summaries(notebook: Path, chars: int = 60) -> list[str]:
    """The start of every widget-view output's static fallback (its ``text/html``, else ``text/plain``)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if _lab.WIDGET_MIME not in data:
                continue
            if "text/html" in data:
                text = _text_of_html("".join(data["text/html"]))
            else:
                text = " ".join("".join(data.get("text/plain", "")).split())
            found.append(text[:chars])
    return found


def test_offline_guard_counts_and_blocks_external_requests(browser, tmp_path):
    page_file = tmp_path / "probe.html"
    page_file.write_text("<html><body><p>probe</p><img src='http://assets.example.invalid/x.png'>"
                         "<script src='https://cdn.example.invalid/x.js'></script></body></html>")
    context, page, visit = visit_offline(browser, page_file.as_uri())
    try:
        assert page.text_content("p") == "probe"
    finally:
        context.close()
    assert sorted(visit.blocked) == ["http://assets.example.invalid/x.png", "https://cdn.example.invalid/x.js"]


def test_pack_has_one_page_per_chapter(built_pack):
    pages = sorted(p.name for p in (built_pack / "html").glob("*.html"))
    assert pages == CHAPTER_PAGES


@pytest.mark.parametrize("name", CHAPTER_PAGES)
def test_chapter_page_is_readable_offline(name, built_pack, browser):
    html = built_pack / "html" / name
    notebook = built_pack / "notebooks" / (Path(name).stem + ".ipynb")
    context, page, visit = visit_offline(browser, html.as_uri())
    try:
        images = page.evaluate(
            """() => Array.from(document.querySelectorAll('.jp-OutputArea-output img')).map(img => {
                   const r = img.getBoundingClientRect();
                   return {w: img.naturalWidth, h: img.naturalHeight, boxW: r.width, boxH: r.height,
                           complete: img.complete}; })""")
        text = " ".join(page.inner_text("body").split())
        empty_widgets = page.evaluate(
            """() => Array.from(document.querySelectorAll('.jupyter-widgets'))
                     .filter(el => !el.innerText.trim()).length""")
        page.screenshot(path=str(_lab.screenshot_dir() / f"html-{Path(name).stem}.png"), full_page=True)
    finally:
        context.close()

    assert visit.blocked == [], f"{name} requested {len(visit.blocked)} URLs: {visit.blocked[:5]}"
    assert visit.console_errors == [], visit.console_errors[:5]
    expected_images = _lab.saved_outputs(notebook).images
    assert len(images) >= expected_images, f"{len(images)} images shown, notebook has {expected_images}"
    assert [i for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0
                                      and i["boxW"] > 0 and i["boxH"] > 0)] == []
    assert empty_widgets == 0, f"{empty_widgets} widget containers show nothing"
    summaries = widget_summaries(notebook)
    missing = [s for s in summaries if not s or s not in text]
    assert missing == [], f"widget outputs not shown as text: {missing}"
    assert "Traceback (most recent call last)" not in text
