"""A parallel build gives the pack a serial build gives, but for measured durations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.evidence import build_evidence

from .test_build import NOTEBOOKS

CHAPTERS = [4, 5]  # two real chapters whose artifacts hold no wall-clock measurement


def _sources(path: Path, pack: Path) -> list:
    """Cell sources of an executed notebook (outputs hold widget model ids and stream chunks
    that differ run to run in any build; the artifacts are compared byte for byte instead)."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source.replace(str(pack), "<pack>")) for c in nb.cells]


def _artifacts(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("ch[0-9][0-9]/**/*")) if p.is_file()}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    base = tmp_path_factory.mktemp("parallel")
    lines: dict[int, list[str]] = {1: [], 2: []}
    for jobs in (1, 2):
        build_evidence(base / f"jobs{jobs}", chapters=CHAPTERS, quiz_answers="key",
                       progress=lines[jobs].append, jobs=jobs)
    return base / "jobs1", base / "jobs2", lines


def test_parallel_pack_equals_serial_pack(both):
    serial, parallel, _ = both
    assert _artifacts(parallel) == _artifacts(serial) and _artifacts(serial)
    m1, m2 = (json.loads((p / "manifest.json").read_text()) for p in (serial, parallel))
    for name, digest in m1["files"].items():
        if name.startswith("ch"):
            assert m2["files"][name] == digest, name
    drop = {"duration_s"}
    assert {k: {f: v for f, v in s.items() if f not in drop} for k, s in m1["chapters"].items()} == \
        {k: {f: v for f, v in s.items() if f not in drop} for k, s in m2["chapters"].items()}
    for nb in (serial / "notebooks").glob("*.ipynb"):
        assert _sources(nb, serial) == _sources(parallel / "notebooks" / nb.name, parallel)
    s1, s2 = (json.loads((p / "score.json").read_text()) for p in (serial, parallel))
    assert s1["points"] == s2["points"] and s1["max_points"] == s2["max_points"]


def test_parallel_progress_has_one_line_per_chapter_with_a_bar(both):
    _, _, lines = both
    done = [line for line in lines[2] if line.startswith("[")]
    assert len(done) == len(CHAPTERS)
    assert done[-1].startswith("[##] 2/2 chapter ") and " ok in " in done[-1]


def test_a_failing_chapter_does_not_hide_the_others_in_parallel(tmp_path):
    result = build_evidence(tmp_path / "out", notebooks=NOTEBOOKS, grade=False, jobs=2,
                            progress=lambda line: None)
    assert result.chapters["1"]["status"] == "ok" and result.failed == [2]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_bad_jobs_are_refused_before_anything_runs(tmp_path, jobs):
    with pytest.raises(ValidationError, match="--jobs"):
        build_evidence(tmp_path / "out", notebooks=NOTEBOOKS, jobs=jobs)
    assert not (tmp_path / "out").exists()
