"""The student release of the real chapter notebooks: every chapter's first exercise stub
stops the run with an ``ExerciseNotDoneError`` naming it, and the grader flags the chapter.

(The reference build at full marks is the last step of ``scripts/test.sh``; the per-exercise
"stub fails / solution passes" contract is tested on small fixtures in tests/evidence.)
"""

from __future__ import annotations

import json
from pathlib import Path

from mlops_kit.evidence import build_evidence, release

ROOT = Path(__file__).resolve().parents[1]


def test_release_stubs_are_flagged_by_build_and_grade(tmp_path):
    exercises = release(tmp_path / "release", notebooks=ROOT / "notebooks")
    by_chapter: dict[int, list[str]] = {}
    for ex in exercises:
        by_chapter.setdefault(int(str(ex.id).split(".")[0]), []).append(str(ex.id))
    assert sorted(by_chapter) == [1, 2, 3, 4, 5, 6]
    assert all(len(ids) >= 2 for ids in by_chapter.values()), by_chapter

    result = build_evidence(tmp_path / "pack", notebooks=tmp_path / "release", timeout=300,
                            progress=lambda _msg: None)
    assert sorted(result.failed) == [1, 2, 3, 4, 5, 6]
    for nb in sorted((tmp_path / "pack" / "notebooks").glob("*.ipynb")):
        errors = [o for c in json.loads(nb.read_text())["cells"]
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors, f"{nb.name}: the stub did not stop the run"
        assert errors[0]["ename"] == "ExerciseNotDoneError", (nb.name, errors[0]["ename"])
        assert "not done yet" in errors[0]["evalue"]
    score = json.loads((tmp_path / "pack" / "score.json").read_text())
    assert score["percent"] < 50, score.get("percent")
