"""Chapter labs: the orchestration behind each chapter notebook.

Each chapter's notebook keeps short cells that call one module here
(``from mlops_kit.labs import ch02``); the platform itself lives in the other sub-packages.
Modules are imported on demand, so importing this package loads nothing else.
"""

#: The chapter lab modules, importable as ``mlops_kit.labs.<name>``.
CHAPTERS = ("ch01", "ch02", "ch03", "ch04", "ch05", "ch06")

__all__ = ["CHAPTERS"]
