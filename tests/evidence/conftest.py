"""Fixtures for the evidence tests: the fixture bank, and packs built without papermill."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def test_bank_dir(monkeypatch):
    """Make the fixture folder the kit's quiz bank folder (bank 'ch01' = the 3-question bank)."""
    from mlops_kit.evidence import quiz

    monkeypatch.setattr(quiz, "_bank_dir", lambda: FIXTURES / "quizzes")
    return FIXTURES / "quizzes"


def chain_lines(n: int, *, genesis: str = "0" * 64) -> list[dict]:
    """An audit chain built here, independently of both the registry and the grader."""
    entries, prev = [], genesis
    for seq in range(1, n + 1):
        body = {"seq": seq, "at": f"2024-01-0{seq}T00:00:00+00:00", "actor": "ana",
                "action": "promote", "payload": {"model": "fraud", "version": seq},
                "prev_hash": prev}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode()).hexdigest()
        entries.append({**body, "hash": digest})
        prev = digest
    return entries


def write_chain(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
                            for e in entries), encoding="utf-8")


def make_pack(root: Path, *, answers: dict | None = None) -> Path:
    """A complete three-chapter pack (ch01, ch03, ch04) recorded in-process, with a manifest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlops_kit.evidence import Recorder, write_manifest
    from mlops_kit.quality import psi

    rec = Recorder(1, evidence_dir=root, seed=3, scale=1, quiz_answers=answers)
    rec.check("1.1-window", True, observed=7, threshold=7, detail="one week")
    rec.save_json("summary", {"b": 2, "a": 1})
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    rec.save_figure("line", fig)
    plt.close(fig)
    rec.quiz()
    rec.complete()

    rng = np.random.default_rng(3)
    rec3 = Recorder(3, evidence_dir=root, seed=3, scale=1)
    ref = pd.DataFrame({"amount": rng.normal(0, 1, 400)})
    cur = pd.DataFrame({"amount": rng.normal(0.5, 1, 300)})
    rec3.save_table("drift_reference", ref)
    rec3.save_table("drift_current", cur)
    stated = round(psi(ref["amount"], cur["amount"]), 4)  # the kit's own implementation
    rec3.save_json("drift_psi", {"reference": "drift_reference.csv", "current": "drift_current.csv",
                                 "features": [{"column": "amount", "psi": stated, "bins": 10}]})
    rec3.check("3.2-drift", stated > 0.1, observed=stated, threshold=0.1, detail="drift seen")
    rec3.complete()

    rec4 = Recorder(4, evidence_dir=root, seed=3, scale=1)
    write_chain(rec4.path("audit_export.jsonl"), chain_lines(4))
    rec4.check("4.5-audit", True, detail="chain verified")
    rec4.complete()

    chapters = {}
    for n in (1, 3, 4):
        name = f"0{n}_chapter.ipynb"
        (root / "notebooks").mkdir(exist_ok=True)
        (root / "html").mkdir(exist_ok=True)
        (root / "notebooks" / name).write_text("{}", encoding="utf-8")
        (root / "html" / f"0{n}_chapter.html").write_text("<html></html>", encoding="utf-8")
        chapters[str(n)] = {"notebook": name, "status": "ok", "error": None, "duration_s": 1.0}
    write_manifest(root, chapters=chapters, parameters={"seed": 3, "scale": 1})
    return root


@pytest.fixture
def pack(tmp_path, test_bank_dir):
    return make_pack(tmp_path / "pack", answers={"t1.1": "B", "t1.2": "A", "t1.3": "D"})
