"""Interaction helpers for the browser tests: find a cell, move its widgets, read what it shows.

Built on ``_lab.py`` (open a notebook, run it, wait until idle). Cells are found by a piece of
their source and addressed by index in ``jupyterapp.shell.currentWidget.content.widgets``; the
harness turns notebook windowing off, so every cell's node is in the DOM. Expected values are
computed by running code in the notebook's own kernel (``kernel_run``), never by reading the page.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ._lab import run_all, run_command, wait_idle

CELL_ATTR = "data-interact-cell"
STDOUT_MIME = "application/vnd.jupyter.stdout"
ERROR_MIME = "application/vnd.jupyter.error"


def find_cell(page, needle: str, *, kind: str = "code") -> int:
    """Index of the one ``kind`` cell whose source contains ``needle``; fails on none or several."""
    found = page.evaluate(
        """([needle, kind]) => window.jupyterapp.shell.currentWidget.content.widgets
              .map((c, i) => [i, c.model.type, c.model.sharedModel.getSource()])
              .filter(([i, t, s]) => t === kind && s.includes(needle)).map(([i]) => i)""",
        [needle, kind])
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} cell containing {needle!r}, found cells {found}")
    return found[0]


def cell_sources(page) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell of the open notebook, in order."""
    return [tuple(x) for x in page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
              .map(c => [c.model.type, c.model.sharedModel.getSource()])""")]


def cell(page, index: int):
    """A locator for cell ``index`` (the node is tagged with ``data-interact-cell``)."""
    page.evaluate(
        """([i, attr]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                            c.node.setAttribute(attr, String(i)); c.node.scrollIntoView({block: 'center'}); }""",
        [index, CELL_ATTR])
    return page.locator(f"[{CELL_ATTR}='{index}']")


def kernel_run(page, code: str, timeout_s: float = 120) -> str:
    """Run ``code`` in the open notebook's kernel (no new cell, no history); return its stdout.

    Raises ``AssertionError`` with the kernel's error when the code fails.
    """
    page.set_default_timeout(timeout_s * 1000)
    result = page.evaluate(
        """async (code) => {
            const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            const future = k.requestExecute({code, store_history: false, stop_on_error: false});
            let out = '', err = null;
            future.onIOPub = (msg) => {
                const t = msg.header.msg_type;
                if (t === 'stream' && msg.content.name === 'stdout') { out += msg.content.text; }
                if (t === 'error') { err = msg.content.ename + ': ' + msg.content.evalue; }
            };
            await future.done;
            return {out, err};
        }""", code)
    if result["err"]:
        raise AssertionError(f"kernel code failed: {result['err']}\n--- code ---\n{code}")
    return result["out"]


def normalize(text: str) -> str:
    """Text as compared: trailing spaces cut per line, blank lines at either end dropped."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip("\n")


def panel_text(page, index: int, panel: int = 0) -> str:
    """Stdout shown in output widget ``panel`` (the redraw area of an explorer) of cell ``index``."""
    return page.evaluate(
        """([i, n, mime]) => {
            const node = window.jupyterapp.shell.currentWidget.content.widgets[i].node;
            const panels = node.querySelectorAll('.jp-OutputArea-output .widget-output');
            if (panels.length <= n) { return null; }
            return Array.from(panels[n].querySelectorAll(`.jp-OutputArea-output[data-mime-type="${mime}"]`))
                .map(el => el.innerText).join('');
        }""", [index, panel, STDOUT_MIME]) or ""


def panel_images(page, index: int, panel: int = 0) -> int:
    """How many loaded images output widget ``panel`` of cell ``index`` shows."""
    return page.evaluate(
        """([i, n]) => {
            const node = window.jupyterapp.shell.currentWidget.content.widgets[i].node;
            const panels = node.querySelectorAll('.jp-OutputArea-output .widget-output');
            if (panels.length <= n) { return 0; }
            return Array.from(panels[n].querySelectorAll('img')).filter(im => im.complete && im.naturalWidth > 0).length;
        }""", [index, panel])


def wait_panel(page, index: int, expected: str, *, panel: int = 0, timeout_s: float = 60) -> str:
    """Wait until the panel's stdout equals ``expected`` (normalized); return it or fail with a diff."""
    want = normalize(expected)
    deadline = time.monotonic() + timeout_s
    shown = ""
    while time.monotonic() < deadline:
        shown = normalize(panel_text(page, index, panel))
        if shown == want:
            return shown
        page.wait_for_timeout(200)
    raise AssertionError(f"cell {index} panel {panel} never showed the expected text after {timeout_s:.0f} s.\n"
                         f"--- shown ---\n{shown}\n--- expected ---\n{want}")


def slider(page, index: int, label: str | None = None, nth: int = 0):
    """The ``nth`` slider of cell ``index`` (or the one whose description is ``label``)."""
    sliders = cell(page, index).locator(".widget-slider")
    if label is not None:
        sliders = sliders.filter(has=page.locator(".widget-label", has_text=re.compile(rf"^{re.escape(label)}$")))
        if sliders.count() != 1:
            raise AssertionError(f"cell {index}: expected one slider labelled {label!r}, found {sliders.count()}")
        return sliders.first
    return sliders.nth(nth)


def set_slider(page, index: int, value: Any, *, label: str | None = None, nth: int = 0) -> str:
    """Move a slider the way a person types into its readout: click, select all, type, Enter.

    Returns the readout's text afterwards (the value the frontend accepted).
    """
    readout = slider(page, index, label, nth).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")
    page.wait_for_timeout(100)
    return readout.inner_text().strip()


def set_dropdown(page, index: int, value: str, nth: int = 0) -> None:
    """Choose ``value`` in the ``nth`` dropdown (``select``) of cell ``index``."""
    cell(page, index).locator(".widget-dropdown select").nth(nth).select_option(value)


def run_through(page, last: int, timeout_s: float = 240) -> None:
    """Run cells ``0 .. last`` (JupyterLab's run-all-above from ``last``, then ``last`` itself)."""
    page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", last)
    run_command(page, "notebook:run-all-above", timeout_s=timeout_s)
    wait_idle(page, timeout_s=timeout_s)
    run_cell(page, last, timeout_s=timeout_s)


def run_cell(page, index: int, timeout_s: float = 240) -> None:
    """Run cell ``index`` alone (``notebook:run-cell``) and wait until the kernel is idle."""
    page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", index)
    run_command(page, "notebook:run-cell", timeout_s=timeout_s)
    wait_idle(page, timeout_s=timeout_s, settle_s=0.3)


def run_each(page, start: int = 0, timeout_s: float = 300) -> None:
    """Run the cells from ``start`` to the end one at a time, going on past a failed cell (as a
    reader pressing Shift+Enter through the notebook would); wait until the kernel is idle."""
    page.set_default_timeout(timeout_s * 1000)
    page.evaluate(
        """async (start) => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            for (let i = start; i < nb.widgets.length; i++) {
                nb.activeCellIndex = i;
                await window.jupyterapp.commands.execute('notebook:run-cell');
            }
        }""", start)
    wait_idle(page, timeout_s=timeout_s)


def cell_output_text(page, index: int) -> str:
    """Everything cell ``index`` shows as output (text of every output, errors included)."""
    return page.evaluate(
        """(i) => Array.from(window.jupyterapp.shell.currentWidget.content.widgets[i].node
                     .querySelectorAll('.jp-OutputArea-output')).map(el => el.innerText).join('\\n')""",
        index)


def cell_errors(page) -> dict[int, str]:
    """Cell index -> the ``ename: evalue`` of its error output, from the cell models (all cells)."""
    found = page.evaluate(
        """() => {
            const out = {};
            window.jupyterapp.shell.currentWidget.content.widgets.forEach((c, i) => {
                if (c.model.type !== 'code') { return; }
                for (let j = 0; j < c.model.outputs.length; j++) {
                    const o = c.model.outputs.get(j).toJSON();
                    if (o.output_type === 'error') { out[i] = o.ename + ': ' + o.evalue; }
                }
            });
            return out;
        }""")
    return {int(k): v for k, v in found.items()}


def executed(page, index: int) -> bool:
    """True when code cell ``index`` has an execution count (it ran in this kernel)."""
    return page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount !== null",
        index)


def type_into_cell(page, index: int, text: str) -> str:
    """Replace cell ``index``'s source by typing ``text`` into its editor; return the cell's new source.

    Lines are typed as they are, so ``text`` should not open indented blocks (the editor would
    indent the next line itself); callers compare the returned source with ``text``.
    """
    editor = cell(page, index).locator(".jp-InputArea-editor .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    for number, line in enumerate(text.split("\n")):
        if number:
            page.keyboard.press("Enter")
        page.keyboard.type(line)
    return page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource()", index)


HELD_CODE = """
import json as _json, ipywidgets as _w
def _held_values(model_id):
    found = []
    def walk(widget):
        if isinstance(widget, _w.Box):
            for child in widget.children:
                walk(child)
        elif isinstance(widget, (_w.IntSlider, _w.FloatSlider, _w.Dropdown)):
            found.append(widget.value)
    walk(_w.Widget.widgets[model_id])
    return found
_held = _held_values({model_id!r})
"""


def widget_model_id(page, index: int) -> str:
    """Model id of the first widget view cell ``index`` displays (an explorer's outer box)."""
    found = page.evaluate(
        """([i, mime]) => { const outs = window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs;
            for (let j = 0; j < outs.length; j++) {
                const data = outs.get(j).toJSON().data;
                if (data && data[mime]) { return data[mime].model_id; }
            }
            return null; }""", [index, "application/vnd.jupyter.widget-view+json"])
    if not found:
        raise AssertionError(f"cell {index} displays no widget")
    return found


def held_prefix(page, index: int) -> str:
    """Kernel code that binds ``_held``: the values the kernel-side controls of cell ``index`` hold,
    in display order (sliders and dropdowns inside its widget box)."""
    return HELD_CODE.format(model_id=widget_model_id(page, index))


def held_values(page, index: int) -> list[Any]:
    """The values the kernel-side controls of cell ``index`` hold (what the wrapped function gets)."""
    import json

    return json.loads(kernel_run(page, held_prefix(page, index) + "print(_json.dumps(_held))"))
