"""Answer literals: the parts of an exercise's solution that *are* the answer (see ``leaks``).

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
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .release import exercise_id, find_solution_blocks

__all__ = ["AnswerLiteral", "answer_literals", "pattern_for", "solution_sources"]

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
                             str(_literal_value(value)), pattern_for(value))
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
                _add(found, kind, text, pattern_for(node))
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


def pattern_for(node: ast.AST) -> str | None:
    number = _number_of(node)
    if number is not None:
        return _number_regex(number)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return _string_regex(node.value.strip())
    return None
