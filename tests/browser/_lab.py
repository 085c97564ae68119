"""Page helpers for the browser tests: JupyterLab driven through ``window.jupyterapp``.

Every helper takes a Playwright ``Page``. The JupyterLab server is started by the session
fixture ``jupyter_lab`` (``conftest.py``) with ``expose_app_in_browser``, notebook windowing
off (every cell stays in the DOM) and no saved layout, so a page opened with
``open_notebook`` shows exactly one notebook.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STDERR_MIME = "application/vnd.jupyter.stderr"
WIDGET_ERROR_TEXT = "Error displaying widget"
TRACEBACK_TEXT = "Traceback"

BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "browser"


def screenshot_dir() -> Path:
    """``build/browser/`` of the checkout (created on first use; git-ignored)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    return BUILD_DIR


def open_notebook(page, base_url: str, name: str, timeout_s: float = 120) -> None:
    """Open ``name`` (a path under the server's root) with ``?reset`` and wait until its kernel is ready."""
    page.goto(f"{base_url}/lab/tree/{name}?reset", wait_until="domcontentloaded",
              timeout=timeout_s * 1000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout_s * 1000)
    page.wait_for_function(
        """(name) => {
            const w = window.jupyterapp.shell.currentWidget;
            return !!(w && w.context && w.context.path.endsWith(name) && w.sessionContext
                      && w.sessionContext.session && w.sessionContext.session.kernel
                      && w.sessionContext.session.kernel.status === 'idle'
                      && w.content && w.content.widgets.length > 0);
        }""", arg=Path(name).name, timeout=timeout_s * 1000, polling=250)


def kernel_status(page) -> str | None:
    """The current notebook's kernel status (``'idle'``, ``'busy'``, ...) or None without a kernel."""
    return page.evaluate(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return k ? k.status : null;
        }""")


def pending_cells(page) -> int:
    """How many code cells are queued or running (prompt ``[*]``)."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
                 .filter(p => p.textContent.includes('*')).length""")


def wait_idle(page, timeout_s: float = 240, settle_s: float = 1.0) -> float:
    """Wait until the kernel is idle with no cell queued for ``settle_s``; return seconds waited."""
    start = time.monotonic()
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if kernel_status(page) == "idle" and pending_cells(page) == 0:
            quiet_since = quiet_since or now
            if now - quiet_since >= settle_s:
                return now - start
        else:
            quiet_since = None
        if now - start > timeout_s:
            raise TimeoutError(f"kernel still {kernel_status(page)!r} with {pending_cells(page)} "
                               f"pending cells after {timeout_s:.0f} s")
        page.wait_for_timeout(250)


def run_command(page, command: str, args: dict[str, Any] | None = None, timeout_s: float = 240) -> Any:
    """Execute a JupyterLab command (``jupyterapp.commands.execute``) and await its promise.

    Returns the command's result when it is a plain value, ``True`` for an object result;
    raises when the command fails or has not finished within ``timeout_s``.
    """
    return page.evaluate(
        """async ([command, args, ms]) => {
            const timeout = new Promise((_, reject) => setTimeout(
                () => reject(new Error(`${command} did not finish within ${ms / 1000} s`)), ms));
            const r = await Promise.race([window.jupyterapp.commands.execute(command, args || {}), timeout]);
            return (r === undefined || r === null || typeof r !== 'object') ? (r ?? null) : true;
        }""", [command, args, timeout_s * 1000])


def run_all(page, timeout_s: float = 240) -> float:
    """Run every cell with JupyterLab's ``notebook:run-all-cells``; wait until idle; return seconds."""
    start = time.monotonic()
    page.evaluate(
        """() => { window.__runAllDone = false;
                   window.jupyterapp.commands.execute('notebook:run-all-cells')
                       .finally(() => { window.__runAllDone = true; }); }""")
    page.wait_for_function("() => window.__runAllDone === true", timeout=timeout_s * 1000, polling=500)
    wait_idle(page, timeout_s=max(10.0, timeout_s - (time.monotonic() - start)))
    return time.monotonic() - start


def save_notebook(page, timeout_s: float = 60) -> None:
    """Save the current notebook (``docmanager:save``) and wait until it is no longer dirty."""
    run_command(page, "docmanager:save", timeout_s=timeout_s)
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=timeout_s * 1000)


def shutdown_kernel(page, timeout_s: float = 60) -> None:
    """Shut down the current notebook's kernel and session (keeps memory low between chapters)."""
    page.evaluate(
        """async (ms) => {
            const w = window.jupyterapp.shell.currentWidget;
            if (!(w && w.sessionContext && w.sessionContext.session)) { return; }
            const timeout = new Promise((_, reject) => setTimeout(
                () => reject(new Error(`kernel shutdown did not finish within ${ms / 1000} s`)), ms));
            await Promise.race([w.sessionContext.shutdown(), timeout]);
        }""", timeout_s * 1000)


def error_outputs(page) -> list[str]:
    """Texts of every error-looking output: error/traceback outputs, stderr tracebacks, widget errors."""
    return page.evaluate(
        """([stderr, widgetError, tb]) => {
            const found = [];
            const add = (kind, el) => found.push(kind + ': ' + el.textContent.trim().slice(0, 400));
            document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
                .forEach(el => { if (el.textContent.includes(tb)) add('stderr traceback', el); });
            document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"], '
                                      + '.jp-OutputArea-output.jp-mod-error, .jp-RenderedText.jp-mod-error')
                .forEach(el => add('error output', el));
            document.querySelectorAll('.jp-OutputArea-output').forEach(el => {
                if (el.textContent.includes(widgetError)) add('widget', el);
                else if (el.textContent.includes(tb + ' (most recent call last)')) add('traceback', el);
            });
            return found;
        }""", [STDERR_MIME, WIDGET_ERROR_TEXT, TRACEBACK_TEXT])


def widget_views(page) -> int:
    """Top-level output areas that rendered a live widget view (a ``.jupyter-widgets`` child).

    Views nested inside another widget (e.g. an ``Output`` widget) are not counted: they are
    not outputs of the notebook itself.
    """
    return page.evaluate(
        """(errorText) => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
                 .filter(el => el.querySelector(':scope > .jupyter-widgets')
                               && !el.parentElement.closest('.jupyter-widgets')
                               && !el.textContent.includes(errorText)).length""",
        WIDGET_ERROR_TEXT)


def output_images(page, selector: str = ".jp-OutputArea-output img") -> list[dict[str, Any]]:
    """Every output image: ``{"src": prefix, "w": naturalWidth, "h": naturalHeight, "complete": bool}``."""
    return page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel)).map(img => ({
                src: (img.getAttribute('src') || '').slice(0, 40), w: img.naturalWidth,
                h: img.naturalHeight, complete: img.complete}))""", selector)


def wait_images_loaded(page, selector: str = "img", timeout_s: float = 30) -> None:
    """Wait until every ``selector`` image has finished loading (or failed)."""
    page.wait_for_function(
        "(sel) => Array.from(document.querySelectorAll(sel)).every(i => i.complete)",
        arg=selector, timeout=timeout_s * 1000)


def notebook_screenshot(page, path: Path, max_height: int = 30000) -> Path:
    """Full-length screenshot of the open notebook, side panels collapsed, from its first cell.

    The notebook scrolls inside its own panel, so the viewport is grown until the whole
    notebook fits (at most ``max_height`` pixels), then restored.
    """
    size = page.viewport_size or {"width": 1280, "height": 900}
    height = page.evaluate(
        """() => {
            window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight();
            const nb = document.querySelector('.jp-NotebookPanel-notebook');
            const scroller = (nb && nb.querySelector('.jp-WindowedPanel-outer')) || nb;
            if (!scroller) { return document.body.scrollHeight; }
            scroller.scrollTop = 0;
            return scroller.scrollHeight + (window.innerHeight - scroller.clientHeight);
        }""")
    page.set_viewport_size({"width": size["width"], "height": int(min(max_height, max(height, 200)))})
    page.wait_for_timeout(500)
    wait_images_loaded(page)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


@dataclass
class SavedOutputs:
    """What an executed notebook (saved by JupyterLab) holds, counted from its JSON."""

    widget_views: int = 0
    images: int = 0
    errors: list[str] = field(default_factory=list)
    unexecuted: int = 0


def saved_outputs(notebook_path: Path) -> SavedOutputs:
    """Count widget-view and image outputs, error outputs and unexecuted code cells in a saved notebook."""
    nb = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    counts = SavedOutputs()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("execution_count") is None and "".join(cell.get("source", [])).strip():
            counts.unexecuted += 1
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            counts.widget_views += WIDGET_MIME in data
            counts.images += any(k.startswith("image/") for k in data)
            if out.get("output_type") == "error":
                counts.errors.append(f"{out.get('ename')}: {out.get('evalue')}")
            elif out.get("name") == "stderr" and TRACEBACK_TEXT in "".join(out.get("text", [])):
                counts.errors.append("".join(out.get("text", []))[:400])
    return counts
