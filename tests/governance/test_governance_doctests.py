"""The docstring examples of mlops_kit.governance run and hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mlops_kit.governance as package

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(package.__path__, package.__name__ + "."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
