"""Under ``CI=true`` the browser tests run: Chromium, Playwright and JupyterLab are all present."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import chromium_executable, missing_outcome, under_ci


def test_missing_browser_fails_under_ci_and_skips_elsewhere():
    assert missing_outcome({"CI": "true"}) == "fail"
    assert missing_outcome({"CI": "TRUE"}) == "fail"
    assert missing_outcome({}) == "skip"
    assert missing_outcome({"CI": "false"}) == "skip"


@pytest.mark.skipif(not under_ci(), reason="only checked under CI=true (elsewhere a missing browser skips)")
def test_ci_has_chromium_playwright_and_jupyterlab():
    path = chromium_executable()
    assert path is not None, "CI=true but chromium is missing: scripts/test.sh installs it with apt-get"
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "Chromium" in version.stdout, version.stdout + version.stderr
    for module in ("playwright.sync_api", "jupyterlab", "jupyterlab_widgets"):
        assert importlib.util.find_spec(module) is not None, f"CI=true but {module} is not installed"
    assert (Path(sys.executable).with_name("jupyter")).exists(), "jupyter is not in the test venv"


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="only under CI=true")
def test_ci_browser_fixture_does_not_skip(chromium_path, browser):
    page = browser.new_page()
    try:
        page.set_content("<p id='x'>ok</p>")
        assert page.text_content("#x") == "ok"
    finally:
        page.close()
