"""Offline HTML renderings of executed notebooks (no CDN references; figures inline).

nbconvert's default HTML loads require.js, MathJax, mermaid and the widget manager from
CDNs. ``templates/offline.html.j2`` extends ``lab/index.html.j2`` with those blocks emptied
(the file must not be named ``index.html.j2``, or nbconvert silently renders its own), and
``metadata.widgets`` is dropped before export.
"""

from __future__ import annotations

import copy
import os
import re
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import nbformat

from .._io import atomic_write_text
from ..errors import EvidenceError

__all__ = ["external_references", "notebook_to_html", "render_html"]

_EXTERNAL_RE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)


def _template() -> str:
    return str(resources.files("mlops_kit.evidence").joinpath("templates/offline.html.j2"))


def render_html(notebook: nbformat.NotebookNode) -> str:
    """Render an (executed) notebook to a self-contained HTML page."""
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(notebook)
    nb.metadata.pop("widgets", None)
    exporter = HTMLExporter(template_file=_template())
    body, _ = exporter.from_notebook_node(nb)
    refs = external_references(body)
    if refs:
        raise EvidenceError(f"Offline HTML still references external resources: {refs[:3]}.",
                            fix="Check the nbconvert version against templates/offline.html.j2.")
    return body


def notebook_to_html(notebook_path: str | os.PathLike[str],
                     html_path: str | os.PathLike[str]) -> Path:
    """Read an executed notebook and write its offline HTML atomically."""
    import nbformat

    nb = nbformat.read(str(notebook_path), as_version=4)
    return atomic_write_text(html_path, render_html(nb))


def external_references(html: str) -> list[str]:
    """Tags that would fetch a script, stylesheet, image or frame over the network."""
    return [m.group(0) for m in _EXTERNAL_RE.finditer(html)]
