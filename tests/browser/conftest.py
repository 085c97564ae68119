"""Browser fixtures: Debian's Chromium driven by Playwright, and a private JupyterLab on loopback.

Playwright's Python package drives the system Chromium through ``executable_path`` (no browser
is ever downloaded). Without Chromium these tests skip with an install hint, except under
``CI=true``, where they fail: CI must run them. Under xdist each worker that needs them starts
its own JupyterLab and browser (session fixtures are per worker).

Fixtures (all documented below): ``chromium_path``, ``browser``, ``page``, ``lab_root``,
``jupyter_lab``, ``lab_page``, ``chapter_runs``, ``built_pack``.

Every browser test carries the ``xdist_group("browser")`` mark (added at collection), so under
``pytest -n 2 --dist loadgroup`` they all run in one worker: one JupyterLab, one Chromium, and
each chapter run once for all the modules that look at it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
INSTALL_HINT = ("Chromium not found: apt-get install -y chromium (or run scripts/test.sh as root); "
                "never 'playwright install'")
PACK_ENV = "MLOPS_KIT_BROWSER_PACK"
VIEWPORT = {"width": 1280, "height": 900}


def pytest_collection_modifyitems(config, items):
    """Keep every browser test in one xdist worker (``--dist loadgroup``): they share one lab."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


def chromium_executable() -> str | None:
    """Path of Debian's Chromium (``chromium`` on PATH, or ``/usr/bin/chromium``), or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def under_ci(env: dict[str, str] | None = None) -> bool:
    """True when ``CI=true`` (missing browser tooling then fails instead of skipping)."""
    return (env if env is not None else os.environ).get("CI", "").lower() == "true"


def missing_outcome(env: dict[str, str]) -> str:
    """What a missing Chromium or Playwright does to the browser tests: 'fail' under CI, else 'skip'."""
    return "fail" if under_ci(env) else "skip"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason`` (fail under ``CI=true``: there the browser tests must run)."""
    if missing_outcome(dict(os.environ)) == "fail":
        pytest.fail(f"{reason}; under CI=true the browser tests must run, not skip.")
    pytest.skip(reason)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Chromium's executable and an importable Playwright; skips (fails under CI) without them."""
    path = chromium_executable()
    if path is None:
        skip_or_fail(INSTALL_HINT)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("playwright is not installed: pip install -e '.[dev]'")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless Chromium for this session (xdist worker), closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage",
                                            "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page (1280x900), closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    """A temporary server root: ``notebooks/`` (copies of the chapters) and an empty ``evidence/``.

    The notebooks' default ``evidence_dir`` is ``../evidence``, so a chapter run in the lab
    writes ``<lab_root>/evidence/chNN/checks.json``.
    """
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(nb, root / "notebooks" / nb.name)
    (root / "evidence").mkdir()
    return root


@dataclass
class LabServer:
    """A running JupyterLab: ``url`` (no token), ``root`` (its root_dir), ``proc`` and ``log``."""

    url: str
    root: Path
    home: Path
    proc: subprocess.Popen
    log: Path

    @property
    def notebooks(self) -> Path:
        """The served copies of the chapter notebooks."""
        return self.root / "notebooks"

    @property
    def evidence(self) -> Path:
        """Where chapters run in this lab record their evidence."""
        return self.root / "evidence"

    def notebook_url_path(self, name: str) -> str:
        """The path of ``notebooks/<name>`` under the server's root, as ``/lab/tree/`` wants it."""
        return f"notebooks/{name}"

    def stop(self) -> None:
        """Terminate the server (and its kernels) by its pid."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _lab_settings(home: Path) -> Path:
    """User settings: no notebook windowing (all cells in the DOM), no news or update checks."""
    settings = home / "user-settings"
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"disclaimed": False},
    }
    for rel, value in files.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value), encoding="utf-8")
    return settings


def start_lab(root: Path, home: Path, timeout_s: float = 90) -> LabServer:
    """Start ``.venv``'s JupyterLab on a free loopback port with private config/data/workspace dirs."""
    jupyter = Path(sys.executable).with_name("jupyter")
    config, data, runtime = home / "config", home / "data", home / "runtime"
    for folder in (config, data, runtime, home / "workspaces", home / "ipython", home / "mpl"):
        folder.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   "extension_manager": "readonly", "expose_app_in_browser": True,
                   "workspaces_dir": str(home / "workspaces"),
                   "user_settings_dir": str(_lab_settings(home))},
        "ServerApp": {"ip": "127.0.0.1", "open_browser": False, "root_dir": str(root),
                      "port_retries": 0, "allow_root": True},
        "IdentityProvider": {"token": ""},
        "PasswordIdentityProvider": {"hashed_password": "", "password_required": False},
    }), encoding="utf-8")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(data),
               JUPYTER_RUNTIME_DIR=str(runtime), IPYTHONDIR=str(home / "ipython"),
               MPLCONFIGDIR=str(home / "mpl"), JUPYTER_PLATFORM_DIRS="1",
               PATH=f"{jupyter.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("MPLBACKEND", None)
    last_error = "not started"
    for _ in range(3):
        port = free_port()
        log = home / f"lab-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(jupyter), "lab", f"--port={port}", "--no-browser"],
                                    cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        return LabServer(url=url, root=root, home=home, proc=proc, log=log)
            except OSError as exc:
                last_error = str(exc)
                time.sleep(0.25)
        server = LabServer(url=url, root=root, home=home, proc=proc, log=log)
        server.stop()
        last_error = f"{last_error}; log tail: {log.read_text(errors='replace')[-1500:]}"
    raise RuntimeError(f"JupyterLab did not start: {last_error}")


@pytest.fixture(scope="session")
def jupyter_lab(chromium_path, lab_root, tmp_path_factory):
    """This session's JupyterLab (``LabServer``) serving ``lab_root``; stopped at the end.

    No token, loopback only, its own config, data, runtime and workspace folders (no saved
    layout leaks in), kernels from ``.venv`` (kernelspec ``python3``).
    """
    server = start_lab(lab_root, tmp_path_factory.mktemp("lab-home"))
    yield server
    server.stop()


@pytest.fixture
def lab_page(browser, jupyter_lab):
    """A fresh page on the session's JupyterLab; records requests leaving loopback in ``page.external``."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    _watch_external(pg)
    yield pg
    context.close()


def _watch_external(pg) -> None:
    """Record every request leaving loopback in ``pg.external``."""
    pg.external = []
    local = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
    pg.on("request", lambda req: None if req.url.startswith(local) else pg.external.append(req.url))


@dataclass
class ChapterRun:
    """One chapter opened in the lab and run with Run All: its page (kernel alive) and timings."""

    name: str
    page: object
    context: object
    open_s: float
    run_s: float


class ChapterRuns:
    """Each chapter notebook of the lab run once (Run All) and kept open with its kernel, so the
    chapter test and the interaction tests look at the same run instead of running it again."""

    def __init__(self, browser, server: LabServer, timeout_s: float = 300):
        self.browser, self.server, self.timeout_s = browser, server, timeout_s
        self.runs: dict[str, ChapterRun] = {}

    def get(self, name: str) -> ChapterRun:
        """The run of ``notebooks/<name>``, started (open, Run All, wait until idle) on first use."""
        if name not in self.runs:
            from . import _lab

            context = self.browser.new_context(viewport=VIEWPORT)
            pg = context.new_page()
            _watch_external(pg)
            start = time.monotonic()
            _lab.open_notebook(pg, self.server.url, self.server.notebook_url_path(name))
            opened = time.monotonic() - start
            try:
                ran = _lab.run_all(pg, timeout_s=self.timeout_s)
            except Exception:
                context.close()
                raise
            self.runs[name] = ChapterRun(name=name, page=pg, context=context, open_s=opened, run_s=ran)
        return self.runs[name]

    def close(self, name: str) -> None:
        """Shut the chapter's kernel down and close its page (a later ``get`` runs it again)."""
        run = self.runs.pop(name, None)
        if run is not None:
            from . import _lab

            try:
                _lab.shutdown_kernel(run.page)
            finally:
                run.context.close()

    def close_all(self) -> None:
        for name in list(self.runs):
            self.close(name)


@pytest.fixture(scope="session")
def chapter_runs(browser, jupyter_lab):
    """This session's ``ChapterRuns`` on ``jupyter_lab`` (kernels shut down at the end)."""
    runs = ChapterRuns(browser, jupyter_lab)
    yield runs
    runs.close_all()


@pytest.fixture(scope="session")
def built_pack(tmp_path_factory) -> Path:
    """A built evidence pack (answer-key quiz answers): ``$MLOPS_KIT_BROWSER_PACK`` when set, else built once.

    ``scripts/test.sh`` builds ``build/evidence-ci`` before the tests and passes it here, so a
    CI run builds the pack once; without the variable this session builds its own (~60-90 s).
    """
    given = os.environ.get(PACK_ENV)
    if given:
        pack = Path(given)
        if not (pack / "html").is_dir():
            pytest.fail(f"{PACK_ENV}={given} has no html/ folder: build it with "
                        f"'mlops-kit evidence build --out {given} --quiz-answers key'")
        return pack
    from mlops_kit.evidence import build_evidence

    out = tmp_path_factory.mktemp("pack") / "pack"
    build_evidence(out, quiz_answers="key", jobs=2, progress=lambda _msg: None)
    return out
