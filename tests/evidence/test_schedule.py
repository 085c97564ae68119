"""A parallel build starts the longest chapters first (previous durations, else code-cell counts)."""

from __future__ import annotations

import json

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlops_kit.evidence.schedule import longest_first


def _nb(folder, number: int, code_cells: int):
    path = folder / f"{number:02d}_c.ipynb"
    cells = [new_code_cell("x = 1") for _ in range(code_cells)] + [new_markdown_cell("m")] * 5
    nbformat.write(new_notebook(cells=cells), str(path))
    return path


def _manifest(pack, durations):
    pack.mkdir(exist_ok=True)
    chapters = {str(n): {"status": "ok", "duration_s": d} for n, d in durations.items()}
    (pack / "manifest.json").write_text(json.dumps({"chapters": chapters}))


def test_without_a_previous_build_more_code_cells_start_first(tmp_path):
    selected = {1: _nb(tmp_path, 1, 3), 2: _nb(tmp_path, 2, 9), 3: _nb(tmp_path, 3, 9), 4: _nb(tmp_path, 4, 1)}
    assert longest_first(selected, tmp_path / "pack") == [2, 3, 1, 4]   # ties keep chapter order


def test_previous_durations_win_when_they_cover_every_chapter(tmp_path):
    selected = {1: _nb(tmp_path, 1, 3), 2: _nb(tmp_path, 2, 9), 6: _nb(tmp_path, 6, 1)}
    _manifest(tmp_path / "pack", {1: 11.6, 2: 15.4, 6: 21.4})
    assert longest_first(selected, tmp_path / "pack") == [6, 2, 1]


def test_partial_or_broken_manifest_falls_back_to_cell_counts(tmp_path):
    selected = {1: _nb(tmp_path, 1, 3), 2: _nb(tmp_path, 2, 9), 6: _nb(tmp_path, 6, 1)}
    _manifest(tmp_path / "pack", {6: 99.0, 1: 1.0})                   # chapter 2 was not built
    assert longest_first(selected, tmp_path / "pack") == [2, 1, 6]
    (tmp_path / "pack" / "manifest.json").write_text("{not json")
    assert longest_first(selected, tmp_path / "pack") == [2, 1, 6]


def test_the_order_is_a_permutation_of_the_selection(tmp_path):
    selected = {n: _nb(tmp_path, n, (n * 7) % 5) for n in range(1, 7)}
    order = longest_first(selected, tmp_path)
    assert sorted(order) == sorted(selected)
    weights = [(n * 7) % 5 for n in order]
    assert weights == sorted(weights, reverse=True)


def test_the_notebooks_recorded_durations_come_before_cell_counts(tmp_path):
    selected = {1: _nb(tmp_path, 1, 3), 2: _nb(tmp_path, 2, 9), 6: _nb(tmp_path, 6, 1)}
    (tmp_path / "durations.json").write_text(json.dumps({"1": 13.8, "2": 16.3, "6": 26.7}))
    assert longest_first(selected, tmp_path / "pack") == [6, 2, 1]
    _manifest(tmp_path / "pack", {1: 30.0, 2: 15.4, 6: 21.4})        # this pack's own build wins
    assert longest_first(selected, tmp_path / "pack") == [1, 6, 2]


def test_partial_or_broken_recorded_durations_fall_back_to_cell_counts(tmp_path):
    selected = {1: _nb(tmp_path, 1, 3), 2: _nb(tmp_path, 2, 9), 6: _nb(tmp_path, 6, 1)}
    (tmp_path / "durations.json").write_text(json.dumps({"6": 26.7, "1": "slow"}))
    assert longest_first(selected, tmp_path / "pack") == [2, 1, 6]
    (tmp_path / "durations.json").write_text("[1, 2")
    assert longest_first(selected, tmp_path / "pack") == [2, 1, 6]


def test_the_course_notebooks_record_every_chapter():
    from mlops_kit.evidence import find_chapters
    from mlops_kit.evidence.runner import default_notebooks_dir

    folder = default_notebooks_dir()
    recorded = json.loads((folder / "durations.json").read_text())
    assert sorted(int(n) for n in recorded) == sorted(find_chapters(folder))
    assert all(isinstance(s, (int, float)) and s > 0 for s in recorded.values())
