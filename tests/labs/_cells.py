"""Run chosen cells of a chapter notebook in a plain namespace (for the negative-control tests).

The negative tests execute the notebook's own measurement, save and check cells, with one
control removed through a parameter or a monkeypatched helper, so they test the checks the
learner reads rather than a copy of them. Magics are dropped and ``display`` is a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")

from mlops_kit.errors import CheckFailedError  # noqa: E402
from mlops_kit.evidence.recorder import Recorder  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


class Cells:
    """The code cells of one notebook, by cell id."""

    def __init__(self, name: str) -> None:
        nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
        self.source = {c["id"]: "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"}
        self.order = [c["id"] for c in nb["cells"] if c["cell_type"] == "code"]

    def between(self, first: str, last: str) -> list[str]:
        """Ids of the code cells from ``first`` to ``last`` (inclusive), in notebook order."""
        i, j = self.order.index(first), self.order.index(last)
        return self.order[i:j + 1]

    def run(self, ids: Iterable[str], ns: dict[str, Any]) -> dict[str, Any]:
        """Execute the cells ``ids`` in ``ns`` (in the given order); returns ``ns``."""
        ns.setdefault("display", lambda *a, **k: None)
        for cid in ids:
            code = "\n".join(line for line in self.source[cid].splitlines() if not line.lstrip().startswith("%"))
            exec(compile(code, f"<cell {cid}>", "exec"), ns)  # noqa: S102 - the notebook's own code
        return ns


def collect_failures(monkeypatch: Any) -> list[str]:
    """Make ``Recorder.check`` record a failed check and go on; returns the list of failed ids."""
    failed: list[str] = []
    original = Recorder.check

    def check(self: Recorder, id: str, passed: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, id, passed, *args, **kwargs)
        except CheckFailedError:
            failed.append(id)
            return None

    monkeypatch.setattr(Recorder, "check", check)
    return failed
