"""Each sub-package has one public surface: ``__all__`` lists exactly its public names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import mlops_kit

PACKAGES = sorted(
    name
    for _, name, is_pkg in pkgutil.iter_modules(mlops_kit.__path__, "mlops_kit.")
    if is_pkg
)


def test_there_are_subpackages():
    assert len(PACKAGES) >= 1


@pytest.mark.parametrize("package", ["mlops_kit", *PACKAGES])
def test_all_matches_public_names(package):
    module = importlib.import_module(package)
    exported = set(getattr(module, "__all__", []))
    assert exported, f"{package} declares no __all__"
    missing = sorted(name for name in exported if not hasattr(module, name))
    assert not missing, f"{package}.__all__ names attributes that do not exist: {missing}"
    public = {"__version__"} & exported | {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in {"annotations", "TYPE_CHECKING"}
    }
    assert public == exported, (
        f"{package}: public names not in __all__: {sorted(public - exported)}; "
        f"in __all__ but not public: {sorted(exported - public)}"
    )
