"""Answer leaks: an exercise's solution showing up elsewhere in its released notebook.

For every exercise the source notebook's solution blocks (the lines strictly between the
``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers, see ``release``) are parsed and the parts
that *are* the answer are extracted. Each becomes a pattern searched in every other place of
the released notebook: code and Markdown sources (the stub cell itself included, so a hint
that gives the answer away is caught) and any outputs.

What counts as an answer literal
--------------------------------
- ``number``: a numeric literal, except the trivial ones (bools; integers from -2 to 2; 0.5;
  100) and integers used as an index or slice bound (``x[-1]``, ``x[:3]``). A number that is
  an element of a literal tuple/list/set/dict is matched only as part of that collection.
  Matching is by value on whole numerals (``60`` matches ``60`` and ``60.0``, not ``160``,
  ``ch60`` or a date's ``-60``; ``0.25`` matches ``.25``).
- ``string``: a string literal of at least 4 characters (an f-string's constant piece: at
  least 12), leading and trailing spaces dropped, that is not a single identifier-like word (``event_timestamp``, ``stable``): such words are
  column, option and API names the stub needs. Dict keys are never extracted on their own
  (they name what is asked, the values answer it).
- ``collection``: a tuple/list/set of at least two literals, at least one of them a
  non-trivial literal or at least three elements (``(15, 25, 50, 100)``, ``("data",
  "feature", "model")``), matched with any brackets, quotes and spacing.
- ``pair``: a dict entry with literal key and value (``"moderate": "page"``).
- ``keyword``: a keyword argument whose value is a non-trivial literal, a literal collection
  or a call on literals one of which counts (``hours=60``, ``severity="block"``,
  ``ttl=timedelta(days=3)``, not ``timedelta(days=1)``); here
  identifier-like strings count, since the keyword says what they answer.
- ``line``: a whole solution line of at least 20 characters (comments dropped), matched with
  any spacing and quoting.

When the match of one literal lies inside the match of a longer one in the same place, only
the longer one is reported.

Allow-list
----------
A leak that is intended (a column name the stub needs, a value the exercise text gives) is
allowed in the source notebook's metadata, each entry with a reason::

    metadata["mlops_kit"]["leak_allow"] = {
        "2.1": [{"literal": "user_id", "reason": "a column name the stub needs"}]}

``literal`` is the text a report prints for the leak. An entry without a reason, for an
unknown exercise, or that no longer matches any leak (stale) is a problem.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tempfile
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .release import exercise_id, find_solution_blocks, release_notebook

__all__ = ["AnswerLiteral", "Leak", "LeakReport", "answer_literals", "check_release_leaks",
           "find_leaks", "solution_sources"]

_TRIVIAL_NUMBERS = {-2, -1, 0, 1, 2, 0.5, 100}
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MIN_STRING = 4
_MIN_LINE = 20
_MIN_FSTRING_PIECE = 12
_COLLECTIONS = (ast.Tuple, ast.List, ast.Set)


@dataclass(frozen=True, kw_only=True)
class AnswerLiteral:
    """One piece of an exercise's answer: ``kind``, the ``text`` a report prints, its regex."""

    kind: str
    text: str
    pattern: str

    def search(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(self.pattern, text)]


@dataclass(frozen=True, kw_only=True)
class Leak:
    """An answer literal of ``exercise`` found in released cell ``cell`` (``where``)."""

    notebook: str
    exercise: str
    kind: str
    literal: str
    cell: int
    where: str

    def __str__(self) -> str:
        return (f"{self.notebook} exercise {self.exercise}: {self.kind} {self.literal!r} "
                f"in cell {self.cell} ({self.where})")


@dataclass(kw_only=True)
class LeakReport:
    """Leaks of one notebook, those its allow-list accepted, and allow-list problems."""

    notebook: str
    leaks: list[Leak] = field(default_factory=list)
    allowed: list[Leak] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.problems

    def lines(self) -> list[str]:
        return [str(leak) for leak in self.leaks] + [f"{self.notebook}: {p}" for p in self.problems]


# -- patterns ----------------------------------------------------------------------------
def _is_trivial_number(value: Any) -> bool:
    return isinstance(value, bool) or value in _TRIVIAL_NUMBERS


def _number_body(value: float) -> str:
    text = repr(float(abs(value)))
    if float(abs(value)).is_integer():
        body = f"{int(abs(value))}(?:\\.0+)?"
    elif "e" in text:
        return re.escape(repr(value))
    else:
        whole, frac = text.split(".")
        body = ("0?" if whole == "0" else whole) + r"\." + frac + "0*"
    return ("-" if value < 0 else "") + body


def _number_regex(value: float) -> str:
    sign_guard = "" if value < 0 else "(?<!-)"
    return rf"(?<![\w.:]){sign_guard}{_number_body(value)}(?![\w:]|\.\d|-\d)"


def _string_regex(value: str) -> str:
    parts = [re.escape(p) for p in value.split()]
    body = r"\s+".join(parts)
    head = r"(?<![\w])" if value[:1].isalnum() else ""
    tail = r"(?![\w])" if value[-1:].isalnum() else ""
    return head + body + tail


def _code_regex(code: str) -> str | None:
    """A regex matching ``code`` with any spacing between tokens and either quote style."""
    pieces: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER, tokenize.COMMENT):
                continue
            if tok.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(tok.string)
                except (ValueError, SyntaxError):
                    pieces.append(re.escape(tok.string))
                    continue
                if isinstance(value, str):
                    pieces.append(r"[\"']" + re.escape(value) + r"[\"']")
                    continue
            if tok.type == tokenize.NUMBER:
                try:
                    pieces.append(_number_body(ast.literal_eval(tok.string)))
                    continue
                except (ValueError, SyntaxError, TypeError):
                    pass
            pieces.append(re.escape(tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    if not pieces:
        return None
    head = r"(?<![\w.])" if re.match(r"\w", code.strip()) else ""
    tail = r"(?!\w)" if re.search(r"\w$", code.strip()) else ""
    return head + r"\s*".join(pieces) + tail


# -- extraction --------------------------------------------------------------------------
def solution_sources(nb: Any) -> dict[str, str]:
    """Exercise id -> the dedented text of its solution blocks (markers excluded)."""
    out: dict[str, list[str]] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        blocks, _ = find_solution_blocks(cell.source)
        ex_id = exercise_id(cell)
        if not blocks or ex_id is None:
            continue
        lines = cell.source.split("\n")
        for block in blocks:
            out.setdefault(ex_id, []).append(textwrap.dedent("\n".join(lines[block.begin + 1:block.end])))
    return {k: "\n".join(v) for k, v in out.items()}


def _literal_value(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL


_NOT_LITERAL = object()


def _number_of(node: ast.AST) -> Any:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number_of(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    return None


def _nontrivial_literal(node: ast.AST) -> bool:
    number = _number_of(node)
    if number is not None:
        return not _is_trivial_number(number)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip()
        return len(text) >= _MIN_STRING and not _IDENT_RE.match(text)
    return False


def _keyword_value_counts(node: ast.AST) -> bool:
    """A keyword value that answers: a non-trivial literal, a collection, a call on literals."""
    number = _number_of(node)
    if number is not None:
        return not _is_trivial_number(number)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value != ""
    if isinstance(node, (*_COLLECTIONS, ast.Dict)):
        return _literal_value(node) is not _NOT_LITERAL and bool(_literal_value(node))
    if isinstance(node, ast.Call):
        args = [*node.args, *(k.value for k in node.keywords)]
        return (all(_literal_value(a) is not _NOT_LITERAL for a in args)
                and any(_keyword_value_counts(a) for a in args))
    return False


def _add(found: dict[tuple[str, str], AnswerLiteral], kind: str, text: str, pattern: str | None
         ) -> None:
    if pattern and (kind, text) not in found:
        found[(kind, text)] = AnswerLiteral(kind=kind, text=text, pattern=pattern)


def answer_literals(source: str) -> list[AnswerLiteral]:
    """The answer literals of one solution's source text (see the module doc for the rules)."""
    if not isinstance(source, str):
        raise ValidationError(f"answer_literals: source must be a string, got {type(source).__name__}.",
                              fix="Pass the solution's code, e.g. solution_sources(nb)['2.1'].")
    found: dict[tuple[str, str], AnswerLiteral] = {}
    try:
        tree: ast.AST | None = ast.parse(source)
    except SyntaxError:
        tree = None
    if tree is not None:
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            parent = parents.get(node)
            if isinstance(node, ast.keyword) and node.arg and _keyword_value_counts(node.value):
                text = f"{node.arg}={ast.unparse(node.value)}"
                _add(found, "keyword", text, _code_regex(text))
            elif isinstance(node, _COLLECTIONS):
                value = _literal_value(node)
                if value is _NOT_LITERAL or len(node.elts) < 2:
                    continue
                if len(node.elts) >= 3 or any(_nontrivial_literal(e) for e in node.elts):
                    inner = ", ".join(ast.unparse(e) for e in node.elts)
                    pattern = _code_regex(inner)
                    _add(found, "collection", ast.unparse(node),
                         None if pattern is None else r"(?<![\w.])" + pattern.removeprefix(r"(?<![\w.])"))
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if key is None or _literal_value(key) is _NOT_LITERAL \
                            or _literal_value(value) is _NOT_LITERAL:
                        continue
                    text = f"{ast.unparse(key)}: {ast.unparse(value)}"
                    _add(found, "pair", text, _code_regex(text))
                    if _nontrivial_literal(value):
                        _add(found, "string" if isinstance(value, ast.Constant)
                             and isinstance(value.value, str) else "number",
                             str(_literal_value(value)), _pattern_for(value))
            elif isinstance(node, ast.Constant) and not isinstance(parent, (ast.Dict, ast.UnaryOp)):
                if isinstance(parent, _COLLECTIONS) and _literal_value(parent) is not _NOT_LITERAL:
                    continue
                if isinstance(parent, (ast.Subscript, ast.Slice)) and isinstance(node.value, int):
                    continue
                if isinstance(parent, ast.JoinedStr):
                    if len(node.value.strip()) < _MIN_FSTRING_PIECE:
                        continue
                elif not _nontrivial_literal(node):
                    continue
                kind = "string" if isinstance(node.value, str) else "number"
                text = node.value.strip() if kind == "string" else repr(node.value)
                _add(found, kind, text, _pattern_for(node))
            elif isinstance(node, ast.UnaryOp) and _number_of(node) is not None:
                if isinstance(parent, (*_COLLECTIONS, ast.Dict, ast.Subscript, ast.Slice)):
                    continue
                if _nontrivial_literal(node):
                    _add(found, "number", repr(_number_of(node)), _number_regex(_number_of(node)))
    for raw in source.split("\n"):
        line = raw.split("  #")[0].strip() if "  #" in raw else raw.strip()
        if line.startswith("#") or len(line) < _MIN_LINE:
            continue
        _add(found, "line", line, _code_regex(line))
    return list(found.values())


def _pattern_for(node: ast.AST) -> str | None:
    number = _number_of(node)
    if number is not None:
        return _number_regex(number)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return _string_regex(node.value.strip())
    return None


# -- search ------------------------------------------------------------------------------
def _output_texts(cell: Any) -> list[str]:
    texts = []
    for output in cell.get("outputs", []) or []:
        if "text" in output:
            texts.append("".join(output["text"]) if isinstance(output["text"], list) else output["text"])
        for value in (output.get("data") or {}).values():
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                texts.append("".join(str(v) for v in value))
        if output.get("output_type") == "error":
            texts.append(str(output.get("evalue", "")))
            texts.extend(str(t) for t in output.get("traceback", []))
    return texts


def _places(nb: Any) -> list[tuple[int, str, str]]:
    places = []
    for index, cell in enumerate(nb.cells):
        places.append((index, cell.cell_type, cell.source))
        places += [(index, "output", text) for text in _output_texts(cell)]
    return places


def _allow_list(nb: Any, exercises: set[str], problems: list[str]) -> dict[str, dict[str, str]]:
    meta = (nb.metadata.get("mlops_kit") or {})
    raw = meta.get("leak_allow", {}) if isinstance(meta, dict) else {}
    if not isinstance(raw, dict):
        problems.append("metadata mlops_kit.leak_allow must map exercise ids to lists of entries")
        return {}
    allow: dict[str, dict[str, str]] = {}
    for ex_id, entries in raw.items():
        if ex_id not in exercises:
            problems.append(f"leak_allow names exercise {ex_id!r}, which this notebook does not have")
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            literal = entry.get("literal") if isinstance(entry, dict) else None
            reason = entry.get("reason") if isinstance(entry, dict) else None
            if not isinstance(literal, str) or not literal:
                problems.append(f"leak_allow[{ex_id!r}] entry {entry!r} has no 'literal'")
            elif not isinstance(reason, str) or not reason.strip():
                problems.append(f"leak_allow[{ex_id!r}] entry {literal!r} has no reason")
            else:
                allow.setdefault(ex_id, {})[literal] = reason
    return allow


def find_leaks(source: Any, released: Any, *, name: str = "notebook") -> LeakReport:
    """Leaks of every exercise of ``source`` in ``released`` (its student version)."""
    if not hasattr(source, "cells") or not hasattr(released, "cells"):
        raise ValidationError("find_leaks: pass two nbformat notebooks (source and released).",
                              fix="Read them with nbformat.read(path, as_version=4).")
    report = LeakReport(notebook=name)
    solutions = solution_sources(source)
    allow = _allow_list(source, set(solutions), report.problems)
    places = _places(released)
    for ex_id, code in solutions.items():
        literals = answer_literals(code)
        used: set[str] = set()
        for index, where, text in places:
            hits = [(span, lit) for lit in literals for span in lit.search(text)]
            for span, lit in hits:
                covered = any(o is not lit and o_span[0] <= span[0] and span[1] <= o_span[1]
                              and (o_span[1] - o_span[0]) > (span[1] - span[0])
                              for o_span, o in hits)
                leak = Leak(notebook=name, exercise=ex_id, kind=lit.kind, literal=lit.text,
                            cell=index, where=where)
                if covered:
                    continue
                if lit.text in allow.get(ex_id, {}):
                    used.add(lit.text)
                    if leak not in report.allowed:
                        report.allowed.append(leak)
                elif leak not in report.leaks:
                    report.leaks.append(leak)
        for literal in sorted(set(allow.get(ex_id, {})) - used):
            report.problems.append(f"leak_allow[{ex_id!r}] entry {literal!r} is stale: it matches "
                                   "no leak any more (remove it)")
    return report


def check_release_leaks(notebooks: str | os.PathLike[str] | None = None,
                        names: list[str] | None = None) -> list[LeakReport]:
    """Release ``notebooks`` into a temporary folder and report each notebook's leaks.

    ``names`` limits the check to some notebook file names (default: every ``*.ipynb``).
    """
    import nbformat

    from .release import release
    from .runner import default_notebooks_dir

    folder = Path(notebooks) if notebooks is not None else default_notebooks_dir()
    with tempfile.TemporaryDirectory(prefix="mlops-kit-release-") as tmp:
        release(tmp, notebooks=folder)
        reports = []
        for path in sorted(folder.glob("*.ipynb")):
            if names is not None and path.name not in names:
                continue
            source = nbformat.read(str(path), as_version=4)
            released = nbformat.read(str(Path(tmp) / path.name), as_version=4)
            reports.append(find_leaks(source, released, name=path.name))
    if names is not None and {r.notebook for r in reports} != set(names):
        missing = sorted(set(names) - {r.notebook for r in reports})
        raise ValidationError(f"check_release_leaks: no notebook named {missing} in {str(folder)!r}.",
                              fix="Pass notebook file names such as '02_feature_store.ipynb'.")
    return reports

