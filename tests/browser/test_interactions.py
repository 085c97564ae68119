"""Interaction in a real JupyterLab: the chapter 1 quiz round trip, every explorer, the student release.

The chapters are the runs of ``chapter_runs`` (conftest): each chapter was opened and run with
Run All once, for ``test_chapters`` and these tests alike, and the tests act on the open page:

- quiz: click a letter per question (some right, some wrong), submit; the form reveals the
  verdicts and explanations only then; ``quiz_answers.json`` holds exactly the clicked letters,
  and ``mlops-kit evidence build --chapters 1`` (which picks that file up by default) records
  them and grades ``C1.quiz`` as the clicks dictate;
- explorers: each control is moved to two values through its widget; the redrawn panel must
  change and show exactly what the wrapped plain lab function prints for those values, computed
  in the same kernel (``_interact.kernel_run``);
- exercises: the student release of chapter 3 (its own page, ``Chapters``) runs cell by cell;
  each stub fails with the exercise named, its check names it too, nothing unrelated breaks; the
  exercises are typed into their cells, their checks pass, and every cell that failed runs again
  in order, cleanly, down to the chapter's completion.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_kit.evidence import load_bank

from . import _interact as I
from . import _lab
from .conftest import NOTEBOOKS, VIEWPORT

RUN_TIMEOUT_S = 300
RELEASE_CHAPTER = "03_feature_ops.ipynb"
STUB_RE = re.compile(r"[ \t]*from mlops_kit\.errors import ExerciseNotDoneError[^\n]*\n[^\n]*ExerciseNotDoneError\([^\n]*")


class Chapters:
    """Chapter copies opened on pages of their own (the student release), one at a time."""

    def __init__(self, browser, server, root: Path):
        self.browser, self.server, self.root = browser, server, root
        self.context = self.page = None

    def open(self, folder: str, name: str, *, source: Path | None = None) -> object:
        """Open ``<root>/<folder>/notebooks/<name>`` (copied from ``source`` or the checkout) in a fresh page."""
        self.close()
        target = self.root / folder / "notebooks" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (self.root / folder / "evidence").mkdir(exist_ok=True)
        shutil.copy2(source or NOTEBOOKS / name, target)
        self.context = self.browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        _lab.open_notebook(self.page, self.server.url, str(target.relative_to(self.server.root)))
        return self.page

    def close(self) -> None:
        if self.page is not None:
            try:
                _lab.shutdown_kernel(self.page)
            finally:
                self.context.close()
        self.context = self.page = None


@pytest.fixture(scope="module")
def chapters(browser, jupyter_lab):
    """The module's ``Chapters`` (its folders live under the lab's root, beside the chapter copies)."""
    opened = Chapters(browser, jupyter_lab, jupyter_lab.root / "interact")
    yield opened
    opened.close()


def ran(chapter_runs, name: str):
    """The page of ``name`` after Run All, with no error in any cell."""
    page = chapter_runs.get(name).page
    assert I.cell_errors(page) == {}
    return page


@pytest.fixture
def chapter1(chapter_runs):
    """Chapter 1 run from top to bottom (the quiz is its last interactive cell)."""
    return ran(chapter_runs, "01_foundations.ipynb")


def assert_explorer(page, needle: str, moves, expected_code, *, held=None, panel_images: int = 0) -> list[str]:
    """Apply each of ``moves`` (callables moving controls) to the explorer in the cell holding
    ``needle``. After each move the kernel-side controls must hold ``held[k]`` (approximately:
    a slider keeps its own float arithmetic) and the panel must show exactly the stdout of
    ``expected_code[k]``, which calls the plain lab function with those held values (``_held``,
    in display order) in the same kernel. The views must differ. Returns the panel texts."""
    index = I.find_cell(page, needle)
    shown = []
    for k, (move, code) in enumerate(zip(moves, expected_code, strict=True)):
        move(index)
        values = I.held_values(page, index)
        if held is not None:
            assert values == [v if isinstance(v, str) else pytest.approx(v) for v in held[k]], values
        expected = I.kernel_run(page, I.held_prefix(page, index) + code)
        assert I.normalize(expected), f"the plain function printed nothing for {code!r}"
        shown.append(I.wait_panel(page, index, expected))
        if panel_images:
            page.wait_for_function(
                """([i, n]) => Array.from(window.jupyterapp.shell.currentWidget.content.widgets[i].node
                       .querySelectorAll('.widget-output img')).filter(im => im.complete && im.naturalWidth > 0)
                       .length >= n""", arg=[index, panel_images], timeout=60_000)
            assert I.panel_images(page, index) == panel_images
    assert len(set(shown)) == len(shown), f"the explorer showed the same view twice:\n{shown}"
    return shown


def slide(page, value, label=None):
    def move(index):
        shown = I.set_slider(page, index, value, label=label)
        accepted = float(shown.replace("\u2212", "-"))       # the readout writes a minus sign as U+2212
        assert accepted == pytest.approx(float(value)), f"slider readout {shown!r} after typing {value}"
    return move


# -- chapter 1: explorers and the quiz round trip -------------------------------------------

STALL = ('from mlops_kit.labs import ch01 as _L\n'
         'print(_L.slos_after_delay(slos, observations, _held[0])[["slo", "observed", "objective", "verdict", "fires"]]'
         '.to_string(index=False))')
DRIFT1 = ('from mlops_kit.labs import ch01_ops as _O\n'
          '_r = _O.drift_response(samples["reference"]["amount"], samples["stable"]["amount"], magnitude=_held[0], '
          'policy=policy)\n'
          'print(f"magnitude {_held[0]:+.2f}: PSI {_r[\'psi\']:.3f} -> level {_r[\'level\']}, action {_r[\'action\']}")')


def test_ch1_stall_explorer(chapter1):
    assert_explorer(chapter1, "explore(show_stall", [slide(chapter1, 24), slide(chapter1, 72)],
                    [STALL, STALL], held=[[24], [72]])


def test_ch1_drift_explorer(chapter1):
    assert_explorer(chapter1, "explore(show_drift", [slide(chapter1, 0.5), slide(chapter1, -0.25)],
                    [DRIFT1, DRIFT1], held=[[0.5], [-0.25]])


def choose_answers(bank) -> dict[str, str]:
    """Right for questions 1, 3, 5 ...; wrong (the first other letter) for 2, 4 ..."""
    return {q.id: q.answer if k % 2 == 0 else next(x for x in "ABCD" if x != q.answer)
            for k, q in enumerate(bank.questions)}


def test_ch1_quiz_round_trip(chapter1, chapter_runs, jupyter_lab):
    page, bank = chapter1, load_bank(1)
    clicks = choose_answers(bank)
    right = sum(clicks[q.id] == q.answer for q in bank.questions)
    assert 0 < right < len(bank.questions)
    index = I.find_cell(page, "rec.quiz()")
    form = I.cell(page, index)
    rows = form.locator(".widget-vbox:has(> .widget-radio)")
    assert rows.count() == len(bank.questions)

    def flat(text):
        return " ".join(text.split())

    for k, q in enumerate(bank.questions):
        row = rows.nth(k)
        assert q.id in row.inner_text()
        row.locator(".widget-radio-box label").filter(has_text=re.compile(rf"^\s*{clicks[q.id]}\. ")).click()
    before = flat(form.inner_text())
    for q in bank.questions:                                  # nothing revealed before submit
        assert flat(q.explanation) not in before
    assert not re.search(r"[\u2714\u2718] (right|wrong)", before)
    evidence = jupyter_lab.evidence                         # the notebooks' ../evidence
    assert not (evidence / "quiz_answers.json").exists()

    form.locator("button", has_text="Submit answers").click()
    summary = f"Quiz ch01: {right} right, {len(bank.questions) - right} wrong, 0 unanswered of {len(bank.questions)}."
    page.wait_for_function("([i, s]) => window.jupyterapp.shell.currentWidget.content.widgets[i].node"
                           ".innerText.includes(s)", arg=[index, summary], timeout=60_000)
    for k, q in enumerate(bank.questions):
        text = flat(rows.nth(k).inner_text())
        verdict = "\u2714 right." if clicks[q.id] == q.answer else f"\u2718 wrong (answer: {q.answer})."
        assert verdict in text and flat(q.explanation) in text, text

    assert json.loads((evidence / "quiz_answers.json").read_text()) == clicks
    recorded = json.loads((evidence / "ch01" / "answers.json").read_text())["banks"]["ch01"]
    assert recorded == {"answers": clicks, "source": "widget"}

    chapter_runs.close("01_foundations.ipynb")                # the build runs its own kernel
    cli = Path(sys.executable).with_name("mlops-kit")
    done = subprocess.run([str(cli), "evidence", "build", "--out", str(evidence), "--chapters", "1",
                           "--notebooks", str(evidence.parent / "notebooks"), "--jobs", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((evidence / "manifest.json").read_text())
    assert manifest["parameters"]["quiz_answers_source"] == "file"
    built = json.loads((evidence / "ch01" / "answers.json").read_text())["banks"]["ch01"]
    assert built["answers"] == clicks
    score = {c["id"]: c for c in json.loads((evidence / "score.json").read_text())["criteria"]}
    fraction = right / len(bank.questions)
    level = 4 if fraction >= 0.8 else 2 if fraction >= 0.4 else 0
    assert score["C1.quiz"]["level"] == level, score["C1.quiz"]
    assert score["C1.quiz"]["why"].startswith(
        f"{right} of {len(bank.questions)} right, {len(bank.questions) - right} wrong, 0 unanswered"), score["C1.quiz"]


# -- chapter 2: the TTL slider -------------------------------------------------------------

TTL = ('from datetime import timedelta as _td\n'
       'from mlops_kit.labs.ch02_show import ttl_reading as _reading\n'
       'from mlops_kit.labs.ch02_sync import ttl_window as _window\n'
       '_seen = _window(window, at, _td(hours=_held[0]))\n'
       'print(_seen.to_string(index=False))\n'
       'print("value read:", _reading(_seen))')


def test_ch2_ttl_slider(chapter_runs):
    page = ran(chapter_runs, "02_feature_store.ipynb")
    assert_explorer(page, "show.ttl_slider(", [slide(page, 100), slide(page, 300)],
                    [TTL, TTL], held=[[100], [300]])


# -- chapter 3: the student release, then the drift explorer on the completed page ----------

def solutions(source: Path) -> dict[str, str]:
    """Exercise id -> the reference solution's body (the lines between the markers) in ``source``."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    found = {}
    for cell in nb["cells"]:
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t.startswith("exercise-")]
        if tags:
            text = "".join(cell["source"])
            body = re.search(r"# BEGIN SOLUTION[^\n]*\n(.*?)\n[ \t]*# END SOLUTION", text, re.S)
            found[tags[0].removeprefix("exercise-")] = body.group(1)
    return found


def test_release_exercises(chapters, tmp_path):
    cli = Path(sys.executable).with_name("mlops-kit")
    release_dir = tmp_path / "release"
    done = subprocess.run([str(cli), "release", "--out", str(release_dir)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    wanted = solutions(NOTEBOOKS / RELEASE_CHAPTER)
    assert wanted, f"{RELEASE_CHAPTER} has no exercise"
    page = chapters.open("release", RELEASE_CHAPTER, source=release_dir / RELEASE_CHAPTER)
    sources = I.cell_sources(page)
    stubs = {m.group(1): i for i, (kind, src) in enumerate(sources) if kind == "code"
             for m in [re.search(r'raise ExerciseNotDoneError\("Exercise (\d+\.\d+): not done yet', src)] if m}
    assert sorted(stubs) == sorted(wanted)
    checks = {ex: next(j for j in range(i + 1, len(sources)) if sources[j][0] == "code") for ex, i in stubs.items()}

    first = min(stubs.values())
    I.run_through(page, first - 1, timeout_s=RUN_TIMEOUT_S)
    assert I.cell_errors(page) == {}, "a cell above the first exercise failed"
    I.run_each(page, first, timeout_s=RUN_TIMEOUT_S)               # every cell in turn, past failures
    unrun = [i for i, (kind, src) in enumerate(sources) if kind == "code" and src.strip()
             and not I.executed(page, i)]
    assert unrun == [], f"cells that never ran: {unrun}"
    errors = I.cell_errors(page)
    for ex, i in stubs.items():
        assert errors.get(i, "").startswith(f"ExerciseNotDoneError: Exercise {ex}: not done yet"), errors.get(i)
        assert f"exercise {ex}" in I.cell_output_text(page, checks[ex]).lower(), I.cell_output_text(page, checks[ex])
        assert checks[ex] in errors, f"the check of exercise {ex} passed on the stub"
    failed_above: list[int] = []
    for i in sorted(errors):                                  # nothing unrelated to an exercise breaks
        ename, _, message = errors[i].partition(": ")
        if ename == "NameError":
            name = re.search(r"name '(\w+)' is not defined", message).group(1)
            defined_by = [sources[j][1] for j in failed_above] + list(wanted.values())
            assert any(re.search(rf"\b{name}\b", src) for src in defined_by), \
                f"cell {i}: {errors[i]} (neither an exercise nor a failed cell above defines {name})"
        else:
            assert ename in ("ExerciseNotDoneError", "CheckFailedError"), f"cell {i}: {errors[i]}"
        failed_above.append(i)

    for ex, i in sorted(stubs.items()):                       # type the exercises in, rerun their checks
        stub = STUB_RE.search(sources[i][1]).group(0)
        filled = sources[i][1].replace(stub, wanted[ex])
        typed = I.type_into_cell(page, i, filled)
        assert [x.strip() for x in typed.split("\n")] == [x.strip() for x in filled.split("\n")], typed
        I.run_cell(page, i, timeout_s=RUN_TIMEOUT_S)
        I.run_cell(page, checks[ex], timeout_s=RUN_TIMEOUT_S)
        errors = I.cell_errors(page)
        assert i not in errors and checks[ex] not in errors, errors
        assert "passed" in I.cell_output_text(page, checks[ex])
    for i in sorted(I.cell_errors(page)):                     # what failed for want of an exercise now runs
        I.run_cell(page, i, timeout_s=RUN_TIMEOUT_S)
    assert I.cell_errors(page) == {}
    chapter = int(RELEASE_CHAPTER[:2])
    assert f"Chapter {chapter} complete" in I.cell_output_text(page, len(sources) - 1)
    chapters.close()


DRIFT3 = ('from mlops_kit.labs import ch03 as _c3\n'
          '_r = _c3.drift_at(reference["amount"], _held[0], policy=policy, seed=seed)\n'
          'print(f"amount x {1 + _held[0]:.2f}: PSI {_r[\'psi\']:.3f} ({_r[\'method\']}: {_r[\'verdict\']}) "\n'
          '      f"-> action for a critical feature: {_r[\'action\']}")')


def test_ch3_drift_explorer(chapter_runs):
    page = ran(chapter_runs, RELEASE_CHAPTER)
    assert_explorer(page, "explore(show_drift", [slide(page, 0.05), slide(page, 1.2)],
                    [DRIFT3, DRIFT3], held=[[0.05], [1.2]])


# -- chapter 4: the promotion gate ------------------------------------------------------------

GATE = ('from mlops_kit.labs import ch04_ops as _ops\n'
        'print(_ops.gate_outcomes(registry, NAME, verdict=auc_gate, minimum=assume["min_auc"], min_gain=_held[0])'
        '.to_string(index=False))')


def test_ch4_gate_explorer(chapter_runs):
    page = ran(chapter_runs, "04_registry.ipynb")
    assert_explorer(page, "explore(show_gate", [slide(page, "0.0000"), slide(page, "0.0500")],
                    [GATE, GATE], held=[[0.0], [0.05]])


# -- chapter 5: the canary explorer (four sliders) ---------------------------------------------

CANARY = ('import matplotlib.pyplot as _plt\n'
          'from mlops_kit.labs.ch05 import explore_canary as _canary\n'
          '_s, _figs = _canary(world, first_step=_held[0], bake_min=_held[1], segment_threshold=_held[2], '
          'window_min=_held[3], seed=seed)\n'
          '[_plt.close(f) for f in _figs]\n'
          'print(_s)')


def test_ch5_canary_explorer(chapter_runs):
    page = ran(chapter_runs, "05_rollout.ipynb")
    start = I.held_values(page, I.find_cell(page, "R.canary_explorer("))   # first step, bake, threshold, window
    other = 0.5 if start[2] != pytest.approx(0.5) else 0.3
    assert_explorer(page, "R.canary_explorer(",
                    [slide(page, other, label="threshold"), slide(page, 5, label="first step %")],
                    [CANARY, CANARY], held=[[start[0], start[1], other, start[3]], [5, start[1], other, start[3]]],
                    panel_images=2)


# -- chapter 6: the drill explorer (a dropdown and a slider) ------------------------------------

DRILL = ('import matplotlib.pyplot as _plt\n'
         'from mlops_kit.labs import ch06_ops as _O\n'
         '_s, _fig = _O.explore_drill(widget_models, frames, asof, kind=_held[0], magnitude=_held[1], seed=seed, '
         'outage_guard=my_outage_guard)\n'
         '_plt.close(_fig)\n'
         'print(_s)')


def test_ch6_drill_explorer(chapter_runs):
    page = ran(chapter_runs, "06_capstone.ipynb")

    def kind(value):
        return lambda index: I.set_dropdown(page, index, value)

    assert_explorer(page, "explore(show_drill", [slide(page, 2.0), kind("concept")],
                    [DRILL, DRILL], held=[["drift", 2.0], ["concept", 2.0]], panel_images=1)
