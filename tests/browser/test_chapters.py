"""Every chapter notebook, run in a real JupyterLab through its own run-all command, in Chromium.

Per chapter: no error output or traceback anywhere, every widget view the notebook creates
renders (the count comes from the notebook as JupyterLab saved it), every figure is an image
with a non-zero natural size, the chapter's ``checks.json`` has all checks passed, and no
request left loopback. A full-length screenshot goes to ``build/browser/chNN.png``.
"""

from __future__ import annotations

import json
import time

import pytest

from . import _lab
from .conftest import NOTEBOOKS

CHAPTERS = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
CHAPTER_TIMEOUT_S = 240


def test_every_chapter_is_collected():
    assert [name[:2] for name in CHAPTERS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_runs_clean_in_jupyterlab(name, jupyter_lab, chapter_runs):
    chapter = int(name[:2])
    run = chapter_runs.get(name)              # open + Run All once; the interaction tests reuse the page
    page = run.page
    _lab.save_notebook(page)
    saved = _lab.saved_outputs(jupyter_lab.notebooks / name)
    errors = _lab.error_outputs(page)
    views = _lab.widget_views(page)
    _lab.wait_images_loaded(page, ".jp-OutputArea-output img")
    images = _lab.output_images(page)
    shot = time.monotonic()
    _lab.notebook_screenshot(page, _lab.screenshot_dir() / f"ch{chapter:02d}.png")
    print(f"{name}: open {run.open_s:.1f} s, run {run.run_s:.1f} s, screenshot {time.monotonic() - shot:.1f} s")

    assert saved.unexecuted == 0, f"{saved.unexecuted} code cells did not run"
    assert saved.errors == [], saved.errors
    assert errors == [], errors
    assert saved.widget_views >= 1, "start_chapter shows the progress widget in every chapter"
    assert views >= saved.widget_views, f"{views} widget views rendered, notebook has {saved.widget_views}"
    assert len(images) >= saved.images, f"{len(images)} images in the page, notebook has {saved.images}"
    bad = [img for img in images if not (img["complete"] and img["w"] > 0 and img["h"] > 0)]
    assert bad == [], bad

    checks = json.loads((jupyter_lab.evidence / f"ch{chapter:02d}" / "checks.json").read_text())
    assert checks["chapter"] == chapter and checks["checks"], checks
    failed = [c["id"] for c in checks["checks"] if c.get("passed") is not True]
    assert failed == [], f"failed checks: {failed}"
    assert page.external == [], f"requests left loopback: {page.external[:5]}"


def test_detectors_see_a_known_error_widget_and_figure(jupyter_lab, lab_page):
    """The helpers against a notebook whose outputs are known: one figure, one widget, one error."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                                  "plt.figure(figsize=(3, 2)); plt.plot([0, 1], [1, 0]); plt.show()"),
        nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider(value=3, description='probe')"),
        nbformat.v4.new_code_cell("raise ValueError('probe failure')"),
        nbformat.v4.new_code_cell("print('never runs')"),
    ]
    target = jupyter_lab.root / "probe" / "probe.ipynb"
    target.parent.mkdir(exist_ok=True)
    nbformat.write(nb, str(target))
    _lab.open_notebook(lab_page, jupyter_lab.url, "probe/probe.ipynb")
    try:
        _lab.run_all(lab_page, timeout_s=CHAPTER_TIMEOUT_S)
        _lab.save_notebook(lab_page)
        errors = _lab.error_outputs(lab_page)
        views = _lab.widget_views(lab_page)
        _lab.wait_images_loaded(lab_page, ".jp-OutputArea-output img")
        images = _lab.output_images(lab_page)
    finally:
        _lab.shutdown_kernel(lab_page)
    saved = _lab.saved_outputs(target)
    assert any("probe failure" in e for e in errors), errors
    assert saved.errors == ["ValueError: probe failure"]
    assert saved.unexecuted == 1  # run-all stops at the error
    assert (saved.widget_views, views) == (1, 1)
    assert saved.images == 1 and len(images) == 1
    assert images[0]["w"] > 0 and images[0]["h"] > 0
